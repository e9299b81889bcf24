"""Sealing for secrets ledgerd keeps in its database: AES-256-GCM under a wrapping key.

What every sealed secret shares, whatever it is (the signing key set, a webhook's secret): the
current wrapping key seals, it and the previous ones open (while the wrapping key is rotated),
each blob names the key that sealed it by fingerprint (a truncated SHA-256 of it, never the
key), and the associated data binds the ciphertext to its *purpose* (what it is, and whose) and
to that fingerprint: a blob sealed for something else, or re-labelled with another fingerprint,
fails to open. The errors name the wrapping key needed by fingerprint, never key material.

How a sealed blob is stored (the envelope's text) is each user's own: ``sealed_keys`` keeps
the key set's JSON envelope, the webhooks a compact string in their column.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledgerd.platform.auth.wrapping_keys import WrappingKey, decode_base64

# GCM's standard nonce: 96 random bits per write, far below the 2**32 writes under one key at
# which random nonces start to risk a repeat for what ledgerd seals (rare writes each).
NONCE_BYTES: Final = 12


class SealingError(Exception):
    """A sealed blob that cannot be opened: no wrapping key, the wrong one, or a damaged blob.

    Its message says which wrapping key (by fingerprint) was needed, never any key material.
    """


@dataclass(frozen=True, slots=True)
class Sealed:
    """A sealed blob: the fingerprint of the key that sealed it, its nonce, the ciphertext."""

    wrapped_by: str
    nonce: bytes
    sealed: bytes


@dataclass(frozen=True, slots=True)
class WrappingKeys:
    """The keys that seal (``current``; None: nothing is sealed) and open (it and ``previous``)."""

    current: WrappingKey | None = None
    previous: tuple[WrappingKey, ...] = ()

    @property
    def seals(self) -> bool:
        return self.current is not None

    def seal(self, plain: bytes, purpose: bytes) -> Sealed:
        """``plain`` sealed under the current key for ``purpose``; ValueError without one."""
        if self.current is None:
            msg = "no wrapping key to seal with"
            raise ValueError(msg)
        nonce = secrets.token_bytes(NONCE_BYTES)
        fingerprint = self.current.fingerprint
        sealed = AESGCM(self.current.secret).encrypt(
            nonce, plain, _associated_data(purpose, fingerprint)
        )
        return Sealed(fingerprint, nonce, sealed)

    def open(self, blob: Sealed, purpose: bytes, what: str) -> bytes:
        """The plain bytes of ``blob``; ``SealingError`` naming ``what`` if it cannot open it."""
        key = self._key(blob.wrapped_by)
        if key is None:
            raise SealingError(self._missing(blob.wrapped_by, what))
        try:
            return AESGCM(key.secret).decrypt(
                blob.nonce, blob.sealed, _associated_data(purpose, blob.wrapped_by)
            )
        except (InvalidTag, ValueError):
            msg = f"{what} sealed under wrapping key {blob.wrapped_by} fails its integrity check"
            raise SealingError(msg) from None

    def is_current(self, fingerprint: str | None) -> bool:
        """Whether what ``fingerprint`` sealed (None: plain) is stored as a write would store it."""
        if self.current is None:
            return fingerprint is None
        return fingerprint == self.current.fingerprint

    def _key(self, fingerprint: str) -> WrappingKey | None:
        keys = (*((self.current,) if self.current else ()), *self.previous)
        return next((key for key in keys if key.fingerprint == fingerprint), None)

    def _missing(self, fingerprint: str, what: str) -> str:
        if self.current is None and not self.previous:
            return f"{what} is sealed (wrapping key {fingerprint}) and no wrapping key is set"
        held = ", ".join(key.fingerprint for key in (self.current, *self.previous) if key)
        return (
            f"{what} is sealed under wrapping key {fingerprint}, which is none of the "
            f"keys given ({held})"
        )


def _associated_data(purpose: bytes, fingerprint: str) -> bytes:
    return purpose + fingerprint.encode()


def encode_base64(data: bytes) -> str:
    """URL-safe base64 without padding, as sealed blobs are written."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_canonical_base64(text: str) -> bytes:
    """What ``encode_base64`` wrote; ValueError for anything else.

    Canonical only: a changed character in the unused low bits of the last one would decode to
    the same bytes, and a tampered blob should not pass for the stored one.
    """
    data = decode_base64(text)
    if encode_base64(data) != text:
        msg = "not canonical base64"
        raise ValueError(msg)
    return data
