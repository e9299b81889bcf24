"""The stored signing key set, sealed: AES-256-GCM under a wrapping key kept outside the database.

Whoever reads the database row of a plain set can mint access tokens; sealed, the row is useless
without the wrapping key, which comes from a setting (a ``secret://`` reference, best).

The envelope is compact JSON, ``{"format":2,"wrapped_by":FINGERPRINT,"nonce":B64,"sealed":B64}``:
format 2 is "a format-1 set (``SigningKeySet.to_json``) sealed with AES-256-GCM" — no algorithm
field, so a reader cannot be talked into another cipher. The fingerprint names the wrapping key
(a truncated SHA-256 of it, never the key) so that a reader holding several (the current and the
previous ones, while the wrapping key is rotated) picks the right one, and says which it lacks.
The associated data binds the ciphertext to this purpose and to that key: a blob sealed for
something else under the same key, or re-labelled with another fingerprint, fails to open.
The cipher, the keys and the errors are the platform's sealing (``sealing``), which the
webhooks' secrets share; the envelope's format is this module's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from ledgerd.platform.auth.keys import STORAGE_FORMAT, KeySetError, SigningKeySet
from ledgerd.platform.auth.sealing import (
    Sealed,
    SealingError,
    WrappingKeys,
    decode_canonical_base64,
    encode_base64,
)
from ledgerd.platform.auth.wrapping_keys import WrappingKey

SEALED_FORMAT: Final = 2
_PURPOSE: Final = b"ledgerd signing keys v2\x00"
_WHAT: Final = "the key set"
_ENVELOPE_FIELDS: Final = frozenset({"format", "wrapped_by", "nonce", "sealed"})


class SealedKeySetError(KeySetError):
    """A stored set that cannot be opened: no wrapping key, the wrong one, or a damaged blob.

    Its message says which wrapping key (by fingerprint) was needed, never any key material.
    """


@dataclass(frozen=True, slots=True)
class KeySetSealing:
    """How the stored set is written and read: sealed under ``current``, or plain if None.

    ``previous`` keys only open: a set sealed under one of them is read, and the next write
    seals it under ``current`` (``needs_resealing`` says whether that write is due).
    """

    current: WrappingKey | None = None
    previous: tuple[WrappingKey, ...] = ()

    @property
    def keys(self) -> WrappingKeys:
        return WrappingKeys(self.current, self.previous)

    @property
    def seals(self) -> bool:
        return self.current is not None

    def seal(self, key_set: SigningKeySet) -> str:
        """The text to store: the envelope if a wrapping key is set, else the plain set."""
        plain = key_set.to_json()
        if self.current is None:
            return plain
        blob = self.keys.seal(plain.encode(), _PURPOSE)
        envelope = {
            "format": SEALED_FORMAT,
            "wrapped_by": blob.wrapped_by,
            "nonce": encode_base64(blob.nonce),
            "sealed": encode_base64(blob.sealed),
        }
        return json.dumps(envelope, separators=(",", ":"))

    def open(self, text: str) -> SigningKeySet:
        """The set ``text`` holds, sealed or plain; ``SealedKeySetError`` if it cannot open it."""
        envelope = _envelope(text)
        if envelope is None:
            return SigningKeySet.from_json(text)
        fingerprint = envelope["wrapped_by"]
        try:
            blob = Sealed(
                fingerprint,
                decode_canonical_base64(envelope["nonce"]),
                decode_canonical_base64(envelope["sealed"]),
            )
        except ValueError:
            blob = Sealed(fingerprint, b"", b"")  # fails its integrity check, or names no key
        try:
            plain = self.keys.open(blob, _PURPOSE, _WHAT)
        except SealingError as error:
            raise SealedKeySetError(str(error)) from None
        return SigningKeySet.from_json(plain.decode())

    def needs_resealing(self, text: str) -> bool:
        """Whether the next write changes how ``text`` is stored (plain, or an older key)."""
        envelope = _envelope(text)
        return not self.keys.is_current(None if envelope is None else envelope["wrapped_by"])


def _envelope(text: str) -> dict[str, str] | None:
    """The sealed envelope's fields; None for a plain set; ``KeySetError`` if neither."""
    try:
        stored = json.loads(text)
        stored_format = stored["format"]
    except (ValueError, KeyError, TypeError):
        raise KeySetError("unreadable key set") from None
    if type(stored_format) is int and stored_format == STORAGE_FORMAT:
        return None
    if type(stored_format) is not int or stored_format != SEALED_FORMAT:
        raise KeySetError(f"unknown key set format {stored_format!r}")
    if set(stored) != _ENVELOPE_FIELDS or not all(
        isinstance(stored[name], str) for name in _ENVELOPE_FIELDS - {"format"}
    ):
        raise SealedKeySetError("malformed sealed key set")
    return {name: stored[name] for name in _ENVELOPE_FIELDS - {"format"}}
