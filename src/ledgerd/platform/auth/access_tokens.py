"""Access tokens: JWTs signed by the key ring's current key, verified with the key's own algorithm.

Claims: ``iss``, ``sub``, ``aud``, ``exp``, ``iat``, ``nbf``, ``jti``, ``scope`` (space-separated,
RFC 8693 §4.2), ``ledgers`` (a list of ledger ids, or ``"*"`` for every ledger: ``*`` is no valid
ledger id) and ``fam``, the refresh-token family the token was issued from (absent for a token
with no family), so that revoking a family can refuse its live access tokens. The header is
``{"alg", "kid", "typ": "at+jwt"}`` (RFC 9068), so no other kind of JWT passes for one.

Verification takes the algorithm from the key the ``kid`` names, never from the token: a token
saying ``alg: none`` or ``HS256`` is refused before any signature is computed.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import JoseError

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.principal import ALL_LEDGERS, LedgerGrant, Principal
from ledgerd.platform.auth.keys import KeyRing
from ledgerd.platform.auth.timing import CLOCK_LEEWAY, MAX_ACCESS_TOKEN_LIFETIME

TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 - a media type, not a password
ALL_LEDGERS_CLAIM: Final = "*"
FAMILY_CLAIM: Final = "fam"
# Far above any token this module issues (~600 bytes with a few ledgers), far below what a
# header may carry: a longer value is refused before it is decoded.
MAX_TOKEN_LENGTH: Final = 8192
_HEADER_MEMBERS: Final = frozenset({"alg", "kid", "typ"})


class RejectionReason(StrEnum):
    """Why a token was refused; machine-readable, and the only thing a rejection carries."""

    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_ISSUER = "wrong_issuer"


class AccessTokenRejectedError(Exception):
    """The token is not accepted. Holds the reason only: never the token or its claims."""

    def __init__(self, reason: RejectionReason) -> None:
        super().__init__(f"access token rejected: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    token_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class VerifiedAccessToken:
    principal: Principal
    token_id: str
    family_id: str | None
    expires_at: datetime
    key_id: str


@dataclass(frozen=True, slots=True)
class TokenAudience:
    """Who issues the tokens (``iss``) and who accepts them (``aud``): settings of the service."""

    issuer: str
    audience: str


class AccessTokenIssuer:
    def __init__(
        self,
        keys: KeyRing,
        names: TokenAudience,
        lifetime: timedelta,
        clock: Clock,
        new_token_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        if not timedelta(seconds=1) <= lifetime <= MAX_ACCESS_TOKEN_LIFETIME:
            msg = f"access-token lifetime must be between 1 s and {MAX_ACCESS_TOKEN_LIFETIME}"
            raise ValueError(msg)
        self._keys, self._names, self._lifetime = keys, names, lifetime
        self._clock, self._new_token_id = clock, new_token_id

    def issue(self, principal: Principal, family_id: str | None = None) -> IssuedAccessToken:
        now = self._clock.now()
        issued_at = int(now.timestamp())
        expires_at = issued_at + int(self._lifetime.total_seconds())
        token_id = self._new_token_id()
        claims: dict[str, Any] = {
            "iss": self._names.issuer,
            "sub": principal.subject,
            "aud": self._names.audience,
            "exp": expires_at,
            "iat": issued_at,
            "nbf": issued_at,
            "jti": token_id,
            "scope": " ".join(sorted(principal.scopes)),
            "ledgers": _ledgers_claim(principal.ledgers),
        }
        if family_id is not None:
            claims[FAMILY_CLAIM] = family_id
        key = self._keys.key_set.current
        header = {"alg": key.algorithm, "kid": key.kid, "typ": TOKEN_TYPE}
        token = jwt.encode(header, claims, key.jwk, algorithms=[key.algorithm], default_type=None)
        return IssuedAccessToken(token, token_id, datetime.fromtimestamp(expires_at, UTC))


class AccessTokenVerifier:
    def __init__(self, keys: KeyRing, names: TokenAudience, clock: Clock) -> None:
        self._keys, self._names, self._clock = keys, names, clock

    def verify(self, token: str) -> VerifiedAccessToken:
        """The token's principal and identifiers, or `AccessTokenRejectedError` with a reason."""
        now = self._clock.now()
        header = _checked_header(token)
        key = self._keys.key_set.verification_key(header["kid"], now)
        if key is None:
            raise AccessTokenRejectedError(RejectionReason.UNKNOWN_KEY)
        if header["alg"] != key.algorithm:
            # alg "none", HS256 keyed with our public key, ...: whatever the token asks for,
            # only the key's own algorithm can make its signature valid.
            raise AccessTokenRejectedError(RejectionReason.BAD_SIGNATURE)
        try:
            decoded = jwt.decode(token, key.jwk, algorithms=[key.algorithm])
        except JoseError:
            raise AccessTokenRejectedError(RejectionReason.BAD_SIGNATURE) from None
        claims = decoded.claims
        _check_times(claims, int(now.timestamp()))
        if claims.get("iss") != self._names.issuer:
            raise AccessTokenRejectedError(RejectionReason.WRONG_ISSUER)
        if claims.get("aud") != self._names.audience:
            raise AccessTokenRejectedError(RejectionReason.WRONG_AUDIENCE)
        return _verified(claims, key.kid)


def _ledgers_claim(ledgers: LedgerGrant) -> str | list[str]:
    return ALL_LEDGERS_CLAIM if ledgers is ALL_LEDGERS else sorted(ledgers)


def _segment_bytes(segment: str) -> bytes:
    """The bytes of one base64url segment written the one canonical way, or MALFORMED.

    Python's decoder skips characters outside the alphabet and ignores the unused low bits of
    the last character, so several texts decode alike. joserfc decodes strictly, but the header
    is read here before joserfc sees the token, and it must be read the same strict way: no
    change to a token's text may leave it meaning the same.
    """
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise AccessTokenRejectedError(RejectionReason.MALFORMED) from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment.encode():
        raise AccessTokenRejectedError(RejectionReason.MALFORMED)
    return raw


def _checked_header(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise AccessTokenRejectedError(RejectionReason.MALFORMED)
    segments = token.split(".")
    if len(segments) != 3:  # noqa: PLR2004 - header.payload.signature (JWS compact form)
        raise AccessTokenRejectedError(RejectionReason.MALFORMED)
    header_bytes, *_ = [_segment_bytes(segment) for segment in segments]
    try:
        header = json.loads(header_bytes)
    except ValueError:
        raise AccessTokenRejectedError(RejectionReason.MALFORMED) from None
    if (
        not isinstance(header, dict)
        or set(header) != _HEADER_MEMBERS
        or header["typ"] != TOKEN_TYPE
        or not isinstance(header["kid"], str)
        or not isinstance(header["alg"], str)
    ):
        raise AccessTokenRejectedError(RejectionReason.MALFORMED)
    return header


def _instant_claim(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    # bool is an int to Python, and a float NaN would compare false both ways: integers only.
    if type(value) is not int:
        raise AccessTokenRejectedError(RejectionReason.MALFORMED)
    return value


def _check_times(claims: dict[str, Any], now: int) -> None:
    leeway = int(CLOCK_LEEWAY.total_seconds())
    expires_at = _instant_claim(claims, "exp")
    not_before = _instant_claim(claims, "nbf")
    issued_at = _instant_claim(claims, "iat")
    if now >= expires_at + leeway:
        raise AccessTokenRejectedError(RejectionReason.EXPIRED)
    if now + leeway < max(not_before, issued_at):
        raise AccessTokenRejectedError(RejectionReason.NOT_YET_VALID)


def _verified(claims: dict[str, Any], kid: str) -> VerifiedAccessToken:
    subject, token_id, scope = claims.get("sub"), claims.get("jti"), claims.get("scope")
    ledgers, family_id = claims.get("ledgers"), claims.get(FAMILY_CLAIM)
    if not (isinstance(subject, str) and subject and isinstance(token_id, str) and token_id):
        raise AccessTokenRejectedError(RejectionReason.MALFORMED)
    if not isinstance(scope, str) or not (family_id is None or isinstance(family_id, str)):
        raise AccessTokenRejectedError(RejectionReason.MALFORMED)
    grant: LedgerGrant
    if ledgers == ALL_LEDGERS_CLAIM:
        grant = ALL_LEDGERS
    elif isinstance(ledgers, list) and all(isinstance(ledger, str) for ledger in ledgers):
        grant = frozenset(ledgers)
    else:
        raise AccessTokenRejectedError(RejectionReason.MALFORMED)
    expires_at = datetime.fromtimestamp(claims["exp"], UTC)
    principal = Principal(subject, frozenset(scope.split()), grant, expires_at)
    return VerifiedAccessToken(principal, token_id, family_id, expires_at, kid)
