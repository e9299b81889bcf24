"""Authorization codes (RFC 6749 §4.1) with PKCE S256 required (RFC 7636).

A code is single use, short-lived, and bound to the client it was issued to, the redirect URI
the user agent was sent back to and the PKCE code challenge the client sent first. Storage keeps
its digest only. Presenting a code that was already redeemed is what an attacker holding a
stolen code looks like: it is refused, and the tokens issued from the code are revoked
(RFC 6749 §4.1.2), through the refresh family the redemption started.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from ledgerd.identity.domain.grants import AccessGrant

# Long enough for a user agent's redirect and the client's token request, short enough that a
# code leaked through a log or a Referer is dead before anyone can use it (RFC 6749 §4.1.2
# recommends at most ten minutes).
CODE_LIFETIME: Final = timedelta(seconds=60)

# The only transformation accepted: `plain` would let anyone who sees the authorization request
# (a log, a proxy) redeem the code, which is what PKCE exists to prevent.
S256: Final = "S256"

# RFC 7636 §4.1: code-verifier = 43*128unreserved; §4.2: an S256 challenge is the base64url
# (no padding) of a SHA-256 digest, always 43 characters.
_VERIFIER: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_S256_CHALLENGE: Final = re.compile(r"[A-Za-z0-9\-_]{43}")


def is_s256_challenge(text: str) -> bool:
    return _S256_CHALLENGE.fullmatch(text) is not None


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(verifier))) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(verifier: str, challenge: str) -> bool:
    """Whether ``verifier`` is well formed and hashes to ``challenge`` (constant-time)."""
    if _VERIFIER.fullmatch(verifier) is None:
        return False
    return hmac.compare_digest(s256_challenge(verifier), challenge)


class CodeRefusal(StrEnum):
    """Why a code yields no tokens (all INVALID_GRANT to a client, one ``reason`` detail)."""

    # Issued to another client, for another redirect URI, or the verifier does not match.
    MISMATCH = "mismatch"
    EXPIRED = "expired"
    # Redeemed before: refused, and what it issued is revoked.
    REUSED = "reused"


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    code_digest: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    # The user who approved, and what the tokens may do (their grant through the client's).
    subject: str
    grant: AccessGrant
    issued_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None = None
    # The digest of the first refresh token issued from the code: it finds the family to revoke
    # when the code is presented again. Set just after the redemption that issued it.
    issued_refresh_digest: str | None = None
    # Set when the code was presented again; tokens issued later from it are revoked at once.
    reuse_detected_at: datetime | None = None

    def __post_init__(self) -> None:
        if not is_s256_challenge(self.code_challenge):
            msg = "an authorization code needs an S256 code challenge"
            raise ValueError(msg)

    @property
    def is_redeemed(self) -> bool:
        return self.redeemed_at is not None

    def redeem(
        self, *, client_id: str, redirect_uri: str, verifier: str, now: datetime
    ) -> CodeRedemption:
        """Use the code; accepted, or refused with the code as it must be stored."""
        if self.is_redeemed:
            flagged = (
                self if self.reuse_detected_at is not None else replace(self, reuse_detected_at=now)
            )
            return CodeRedemption(flagged, CodeRefusal.REUSED)
        # Every binding is checked before anything changes: a request that is wrong about the
        # client, the URI or the verifier does not spend the code of the client it is not.
        bound = (
            hmac.compare_digest(self.client_id, client_id)
            and hmac.compare_digest(self.redirect_uri.encode(), redirect_uri.encode())
            and verifier_matches(verifier, self.code_challenge)
        )
        if not bound:
            return CodeRedemption(self, CodeRefusal.MISMATCH)
        if now >= self.expires_at:
            return CodeRedemption(self, CodeRefusal.EXPIRED)
        return CodeRedemption(replace(self, redeemed_at=now), None)

    def with_issued_refresh_digest(self, digest: str) -> AuthorizationCode:
        return replace(self, issued_refresh_digest=digest)


@dataclass(frozen=True, slots=True)
class CodeRedemption:
    code: AuthorizationCode
    refusal: CodeRefusal | None

    @property
    def accepted(self) -> bool:
        return self.refusal is None
