"""Stream tickets' text: 256 random bits as 64 hex digits, stored as their SHA-256.

Hex rather than base64: a ticket travels in a URL's query, where hex needs no escaping in any
client. As with refresh tokens (``platform/auth/opaque_tokens.py``), a fast digest is enough:
a 256-bit random value cannot be guessed from its digest.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

TICKET_BYTES: Final = 32


class HexTicketTokens:
    def new_token(self) -> str:
        return secrets.token_hex(TICKET_BYTES)

    def digest(self, token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()
