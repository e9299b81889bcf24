"""Opaque bearer tokens (refresh tokens): 256 random bits, stored only as a SHA-256 digest.

The digest is for lookup and for not keeping usable tokens in the database. A slow hash (argon2,
as for secrets people choose) buys nothing here: slow hashing protects low-entropy inputs from
guessing, and a 256-bit random token cannot be guessed from its digest at any hash speed. A fast
digest can be an indexed column, looked up in one query; a salted slow hash cannot.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

TOKEN_BYTES: Final = 32  # 256 bits of entropy


class OpaqueTokens:
    """Makes refresh tokens and the digest they are stored and looked up by."""

    def new_token(self) -> str:
        """43 characters of base64url: a random 256-bit value, handed out once."""
        return secrets.token_urlsafe(TOKEN_BYTES)

    def digest(self, token: str) -> str:
        """SHA-256 of the token's text, in hex: what storage keeps and indexes."""
        return hashlib.sha256(token.encode()).hexdigest()
