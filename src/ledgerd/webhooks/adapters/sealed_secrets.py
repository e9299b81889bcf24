"""The endpoints' signing secrets as stored: sealed under the database's wrapping key, or plain.

Whoever reads a plain ``webhook_endpoints`` row can sign deliveries as ledgerd would; sealed, the
row is useless without the wrapping key (``LEDGERD_SIGNING_KEYS_SECRET``, the one key for the
secrets ledgerd keeps in its database, which also seals the token signing keys). The platform's
sealing (``ledgerd.platform.auth.sealing``) does the cryptography; this module the column's text:

    sealed1.<fingerprint>.<nonce>.<ciphertext>   (nonce and ciphertext in unpadded base64url)

A plain secret starts ``whsec_`` and holds no dot, so the two never pass for each other. The
associated data names the purpose and the endpoint: a sealed secret copied onto another
endpoint's row does not open there. No wrapping key set: secrets are written plain; plain rows
are always read; a row sealed under a previous key opens, and its next write seals it anew.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from ledgerd.platform.auth.sealing import (
    Sealed,
    SealingError,
    WrappingKeys,
    decode_canonical_base64,
    encode_base64,
)
from ledgerd.webhooks.domain.endpoints import SigningSecrets

SEALED_PREFIX: Final = "sealed1"
_PURPOSE: Final = b"ledgerd webhook secret v1\x00"
_WHAT: Final = "the webhook secret"
# The column's width: "sealed1." + 16 + "." + 16 + "." + 115 (a 70-character secret and its
# 16-byte tag in base64) is 157 characters; the rest is room for a longer secret.
STORED_SECRET_LENGTH: Final = 400


class WebhookSecretSealing:
    """Seals the secrets written, opens those read (each bound to its endpoint's id)."""

    def __init__(self, keys: WrappingKeys | None = None) -> None:
        self._keys = keys or WrappingKeys()

    @property
    def seals(self) -> bool:
        return self._keys.seals

    def stored(self, webhook_id: str, secret: str | None) -> str | None:
        """The text to store for ``secret``: sealed if a wrapping key is set, else as it is."""
        if secret is None or not self._keys.seals:
            return secret
        blob = self._keys.seal(secret.encode(), _purpose(webhook_id))
        return ".".join(
            (SEALED_PREFIX, blob.wrapped_by, encode_base64(blob.nonce), encode_base64(blob.sealed))
        )

    def opened(self, webhook_id: str, stored: str | None) -> str | None:
        """The secret ``stored`` holds; ``SealingError`` (naming the key needed) if it cannot."""
        blob = _blob(stored)
        if blob is None:
            return stored
        return self._keys.open(blob, _purpose(webhook_id), _WHAT).decode()

    def secrets_of(
        self,
        webhook_id: str,
        current: str,
        previous: str | None,
        previous_expires_at: datetime | None,
    ) -> SigningSecrets:
        """The endpoint's secrets; if they cannot be opened, none, with the reason why."""
        try:
            opened = self.opened(webhook_id, current)
            opened_previous = self.opened(webhook_id, previous)
        except SealingError as error:
            return SigningSecrets("", unreadable=str(error))
        return SigningSecrets(opened or "", opened_previous, previous_expires_at)

    def needs_resealing(self, stored: str | None) -> bool:
        """Whether writing ``stored`` again changes it (plain with a key set, or an older key)."""
        if stored is None:
            return False
        blob = _blob(stored)
        return not self._keys.is_current(None if blob is None else blob.wrapped_by)


def _purpose(webhook_id: str) -> bytes:
    return _PURPOSE + webhook_id.encode() + b"\x00"


def _blob(stored: str | None) -> Sealed | None:
    """The sealed blob ``stored`` holds; None if it is plain."""
    if stored is None or not stored.startswith(SEALED_PREFIX + "."):
        return None
    parts = stored.split(".")
    if len(parts) != 4:  # noqa: PLR2004 - the prefix, the fingerprint, the nonce, the text
        return Sealed("(unreadable)", b"", b"")
    _, fingerprint, nonce, sealed = parts
    try:
        return Sealed(fingerprint, decode_canonical_base64(nonce), decode_canonical_base64(sealed))
    except ValueError:
        return Sealed(fingerprint, b"", b"")  # fails its integrity check, or names no key held
