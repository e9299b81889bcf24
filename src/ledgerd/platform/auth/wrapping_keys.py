"""The key that seals the stored signing key set, as a setting gives it: 32 bytes in base64.

Apart from the sealing itself (``sealed_keys``) so that the settings can check a key's form
without importing the cipher.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from typing import Final

WRAPPING_KEY_BYTES: Final = 32
_FINGERPRINT_LABEL: Final = b"ledgerd wrapping key fingerprint\x00"


@dataclass(frozen=True, slots=True)
class WrappingKey:
    """32 random bytes that seal the stored set; ``repr`` shows the fingerprint only."""

    secret: bytes = field(repr=False)
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.secret) != WRAPPING_KEY_BYTES:
            msg = f"a wrapping key is {WRAPPING_KEY_BYTES} bytes, not {len(self.secret)}"
            raise ValueError(msg)
        digest = hashlib.sha256(_FINGERPRINT_LABEL + self.secret).hexdigest()
        object.__setattr__(self, "fingerprint", digest[:16])

    @classmethod
    def from_base64(cls, text: str) -> WrappingKey:
        """The key from base64, standard or URL-safe alphabet, padding optional."""
        return cls(decode_base64(text.strip()))


def decode_base64(text: str) -> bytes:
    """Base64 in either alphabet; ``ValueError`` (without the text) if it is not base64."""
    standard = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except binascii.Error:
        msg = "not base64"
        raise ValueError(msg) from None


def wrapping_keys(text: str) -> tuple[WrappingKey, ...]:
    """The comma-separated keys in ``text``; ``ValueError`` naming the fault, never the text."""
    keys = []
    for item in text.split(","):
        try:
            keys.append(WrappingKey.from_base64(item))
        except ValueError as error:
            msg = f"must be {WRAPPING_KEY_BYTES} random bytes in base64 ({error})"
            raise ValueError(msg) from None
    return tuple(keys)
