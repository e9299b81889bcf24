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
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledgerd.platform.auth.keys import STORAGE_FORMAT, KeySetError, SigningKeySet
from ledgerd.platform.auth.wrapping_keys import WrappingKey, decode_base64

SEALED_FORMAT: Final = 2
# GCM's standard nonce: 96 random bits per write. A set is written a handful of times per key
# (each rotation), far below the 2**32 writes at which random nonces start to risk a repeat.
_NONCE_BYTES: Final = 12
_PURPOSE: Final = b"ledgerd signing keys v2\x00"
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
    def seals(self) -> bool:
        return self.current is not None

    def seal(self, key_set: SigningKeySet) -> str:
        """The text to store: the envelope if a wrapping key is set, else the plain set."""
        plain = key_set.to_json()
        if self.current is None:
            return plain
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(self.current.secret).encrypt(
            nonce, plain.encode(), _associated_data(self.current.fingerprint)
        )
        envelope = {
            "format": SEALED_FORMAT,
            "wrapped_by": self.current.fingerprint,
            "nonce": _base64(nonce),
            "sealed": _base64(sealed),
        }
        return json.dumps(envelope, separators=(",", ":"))

    def open(self, text: str) -> SigningKeySet:
        """The set ``text`` holds, sealed or plain; ``SealedKeySetError`` if it cannot open it."""
        envelope = _envelope(text)
        if envelope is None:
            return SigningKeySet.from_json(text)
        fingerprint = envelope["wrapped_by"]
        key = self._key(fingerprint)
        if key is None:
            raise SealedKeySetError(self._missing(fingerprint))
        try:
            plain = AESGCM(key.secret).decrypt(
                _unbase64(envelope["nonce"]),
                _unbase64(envelope["sealed"]),
                _associated_data(fingerprint),
            )
        except (InvalidTag, ValueError):
            msg = f"the key set sealed under wrapping key {fingerprint} fails its integrity check"
            raise SealedKeySetError(msg) from None
        return SigningKeySet.from_json(plain.decode())

    def needs_resealing(self, text: str) -> bool:
        """Whether the next write changes how ``text`` is stored (plain, or an older key)."""
        envelope = _envelope(text)
        if self.current is None:
            return envelope is not None
        return envelope is None or envelope["wrapped_by"] != self.current.fingerprint

    def _key(self, fingerprint: str) -> WrappingKey | None:
        keys: Sequence[WrappingKey] = (*((self.current,) if self.current else ()), *self.previous)
        return next((key for key in keys if key.fingerprint == fingerprint), None)

    def _missing(self, fingerprint: str) -> str:
        if self.current is None and not self.previous:
            return f"the key set is sealed (wrapping key {fingerprint}) and no wrapping key is set"
        held = ", ".join(key.fingerprint for key in (self.current, *self.previous) if key)
        return (
            f"the key set is sealed under wrapping key {fingerprint}, which is none of the "
            f"keys given ({held})"
        )


def _associated_data(fingerprint: str) -> bytes:
    return _PURPOSE + fingerprint.encode()


def _base64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unbase64(text: str) -> bytes:
    # Canonical only: a changed character in the unused low bits of the last one would decode
    # to the same bytes, and a tampered envelope should not pass for the stored one.
    data = decode_base64(text)
    if _base64(data) != text:
        msg = "not canonical base64"
        raise ValueError(msg)
    return data


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
