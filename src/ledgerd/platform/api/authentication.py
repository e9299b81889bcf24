"""Authentication and authorisation: the concern of the call pipeline that knows the caller.

For every call but those of the public services (health checking, reflection), it reads the
``authorization`` metadata (over REST the header of that name, which the gateway passes on),
verifies the bearer token, refuses one whose refresh family was revoked, and checks the method's
entry in the access table: the scope the call needs and, when the entry names a request field,
the ledger the call acts on. A method with no entry is refused (fail closed), so an RPC added
without one cannot be called at all. On success the call runs as its principal: it is set on the
:class:`CallInfo` and in the kernel's principal scope, where the use cases read it.

A ledger outside the token's grant is asked about once more, live (a ledger created after the
token was issued is granted to its creator in storage, not in the token), and if still not
granted, the call is refused exactly as the service refuses a ledger that does not exist, so that
ids cannot be probed. Neither the token nor any part of it is ever put in an error or a log line.

A gRPC call over a connection verified with a client certificate (mTLS) and carrying no token is
made as the principal its certificate's identity is granted (``LEDGERD_MTLS_IDENTITIES``); a
call carrying a token is judged by its token alone.

A call carrying a stream ticket instead (``CallInfo.ticket``: a browser's event stream, which
cannot send a header) is made as the principal the ticket was issued to, once: redeeming it
consumes it. A ticket stands for one ledger, so its call is judged by that grant alone, never
widened by storage's live grants.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Final, Protocol, TypeVar

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.principal import Principal, principal_scope
from ledgerd.platform.api.pipeline import CallInfo
from ledgerd.platform.auth.access_tokens import AccessTokenRejectedError, VerifiedAccessToken

T = TypeVar("T")

AUTHORIZATION_KEY: Final = "authorization"
# Far above any token ledgerd issues, far below what a header may carry: a longer value is
# refused unread.
MAX_AUTHORIZATION_LENGTH: Final = 8192
# RFC 6750 §2.1: "Bearer" (case-insensitive, as every auth-scheme), one or more spaces, and one
# b64token. Anything else (no scheme, another scheme, two tokens) is malformed.
_BEARER: Final = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)")
# The details members the REST edge turns into RFC 6750's WWW-Authenticate parameters.
ERROR_DETAIL: Final = "error"
SCOPE_DETAIL: Final = "scope"
INVALID_TOKEN: Final = "invalid_token"  # noqa: S105 - an RFC 6750 error code, not a password
DEFAULT_REVOCATION_TTL_S: Final = 2.0


class MethodAccessEntry(Protocol):
    """What a method requires (``ledgerd.platform.api.access.MethodAccess`` has this shape).

    ``scope`` None marks a public method, callable without a token; ``ledger_field`` names the
    request field holding the ledger the call acts on, or None.
    """

    @property
    def scope(self) -> str | None: ...

    @property
    def ledger_field(self) -> str | None: ...


class TokenVerifier(Protocol):
    """``AccessTokenVerifier``: the token's principal, or ``AccessTokenRejectedError``."""

    def verify(self, token: str) -> VerifiedAccessToken: ...


class FamilyRevocations(Protocol):
    """Whether a refresh-token family was revoked (its access tokens are refused from then on)."""

    async def is_revoked(self, family_id: str) -> bool: ...


class LiveLedgerGrants(Protocol):
    """Whether ``principal`` may use ``ledger_id`` now, as storage says (not its token)."""

    async def may_use_ledger(self, principal: Principal, ledger_id: str) -> bool: ...


class PeerGrants(Protocol):
    """The principal a verified client certificate's identity is granted, or None (mTLS)."""

    def principal_of(self, identity: str) -> Principal | None: ...


class SingleUseTickets(Protocol):
    """Redeems a stream ticket: the principal it was issued to, once; None if it is not valid.

    The principal's ledger grant is the ticket's one ledger, and its ``expires_at`` that of the
    access token that asked for the ticket.
    """

    async def redeem(self, ticket: str) -> Principal | None: ...


# The refusal a service gives for a resource that does not exist, by the id asked for.
HiddenResource = Callable[[str], Exception]


class CachedRevocations:
    """``revocations`` with each answer remembered for ``ttl_s`` seconds.

    Every authenticated call asks; the cache keeps that off the database. The price: a family
    revoked in another process is honoured here within ``ttl_s`` (docs/security.md).
    """

    def __init__(
        self,
        revocations: FamilyRevocations,
        ttl_s: float = DEFAULT_REVOCATION_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._revocations, self._ttl_s, self._clock = revocations, ttl_s, clock
        self._answers: dict[str, tuple[float, bool]] = {}

    async def is_revoked(self, family_id: str) -> bool:
        now = self._clock()
        remembered = self._answers.get(family_id)
        if remembered is not None and now < remembered[0]:
            return remembered[1]
        revoked = await self._revocations.is_revoked(family_id)
        self._forget_expired(now)
        self._answers[family_id] = (now + self._ttl_s, revoked)
        return revoked

    def _forget_expired(self, now: float) -> None:
        # Bounded by the families active within one TTL: expired answers are dropped as they go.
        expired = [family for family, (until, _) in self._answers.items() if until <= now]
        for family in expired:
            del self._answers[family]


def unauthenticated(message: str, *, token_presented: bool) -> LedgerdError:
    """UNAUTHENTICATED; with RFC 6750's ``invalid_token`` when a credential was presented."""
    details = {ERROR_DETAIL: INVALID_TOKEN} if token_presented else {}
    return LedgerdError(ErrorCode.UNAUTHENTICATED, message, details)


def insufficient_scope(scope: str | None, method: str) -> LedgerdError:
    if scope is None:  # the method has no access entry: no scope can grant it
        return LedgerdError(ErrorCode.INSUFFICIENT_SCOPE, f"{method} is granted by no scope")
    return LedgerdError(
        ErrorCode.INSUFFICIENT_SCOPE,
        f"the access token lacks the scope {scope}",
        {SCOPE_DETAIL: scope},
    )


def bearer_token(authorization: str | None) -> str:
    """The token of an ``authorization`` value, or UNAUTHENTICATED (never quoting the value)."""
    if authorization is None:
        raise unauthenticated("missing access token", token_presented=False)
    if len(authorization) > MAX_AUTHORIZATION_LENGTH or not authorization.isascii():
        raise unauthenticated("malformed authorization", token_presented=True)
    matched = _BEARER.fullmatch(authorization)
    if matched is None:
        raise unauthenticated("malformed authorization", token_presented=True)
    return matched[1]


class Authentication:
    """The concern: who calls, and may they make this call on this ledger.

    ``access`` maps method paths (``/ledgerd.v1.LedgerService/GetLedger``) to their entries;
    ``hidden`` maps service full names to the refusal of a resource the caller may not see;
    the methods of ``public_services`` need no token.
    """

    def __init__(  # noqa: PLR0913 - each port is one question the concern asks
        self,
        *,
        verifier: TokenVerifier,
        revocations: FamilyRevocations,
        live_grants: LiveLedgerGrants,
        access: Mapping[str, MethodAccessEntry],
        hidden: Mapping[str, HiddenResource],
        public_services: Collection[str],
        peers: PeerGrants | None = None,
        tickets: SingleUseTickets | None = None,
    ) -> None:
        self._verifier, self._revocations, self._live_grants = verifier, revocations, live_grants
        self._peers, self._tickets = peers, tickets
        self._access, self._hidden = dict(access), dict(hidden)
        self._public = frozenset(public_services)
        unrefusable = sorted(
            {
                method[1:].partition("/")[0]
                for method, entry in self._access.items()
                if entry.ledger_field is not None
            }
            - set(self._hidden)
        )
        if unrefusable:
            msg = f"no refusal of a hidden resource for the services {', '.join(unrefusable)}"
            raise ValueError(msg)

    async def __call__(self, call: CallInfo, proceed: Callable[[], Awaitable[T]]) -> T:
        if call.service in self._public:
            return await proceed()
        entry = self._access.get(call.method)
        scope = None if entry is None else entry.scope
        if entry is not None and scope is None:
            return await proceed()
        principal = await self._authenticated(call)
        call.principal = principal  # known from here on: the access log names it, refused or not
        if entry is None or scope is None:
            raise insufficient_scope(None, call.method)  # fail closed: no entry, no call
        if not principal.has_scope(scope):
            raise insufficient_scope(scope, call.method)
        if entry.ledger_field is not None:
            # A ticket's grant is its one ledger: storage's live grants do not widen it.
            live = call.ticket is None
            await self._check_ledger(call, principal, entry.ledger_field, live=live)
        with principal_scope(principal):
            return await proceed()

    async def _authenticated(self, call: CallInfo) -> Principal:
        authorization = call.metadata.get(AUTHORIZATION_KEY)
        if call.ticket is not None:
            return await self._redeemed(call.ticket, token_presented=authorization is not None)
        if authorization is None and call.peer is not None and self._peers is not None:
            return _peer_principal(self._peers, call.peer)
        token = bearer_token(authorization)
        try:
            verified = self._verifier.verify(token)
        except AccessTokenRejectedError as rejected:
            # The reason only (expired, unknown_key, ...): never the token or its claims.
            message = f"access token refused: {rejected.reason}"
            raise unauthenticated(message, token_presented=True) from None
        if verified.family_id is not None and await self._revocations.is_revoked(
            verified.family_id
        ):
            raise unauthenticated("access token refused: revoked", token_presented=True)
        return verified.principal

    async def _redeemed(self, ticket: str, *, token_presented: bool) -> Principal:
        if token_presented:
            # Which of the two would the call run as? Neither is guessed; the ticket stays valid.
            raise unauthenticated(
                "a stream ticket and an access token: present one credential",
                token_presented=True,
            )
        principal = None if self._tickets is None else await self._tickets.redeem(ticket)
        if principal is None:
            raise unauthenticated(
                "stream ticket refused: unknown, already used or expired", token_presented=True
            )
        return principal

    async def _check_ledger(
        self, call: CallInfo, principal: Principal, field: str, *, live: bool = True
    ) -> None:
        ledger_id = getattr(call.request, field, None)
        if not isinstance(ledger_id, str):
            # A client stream, or a request without the field: nothing to check it against.
            raise insufficient_scope(None, call.method)
        if principal.may_use_ledger(ledger_id):
            return
        if live and await self._live_grants.may_use_ledger(principal, ledger_id):
            return
        raise self._hidden[call.service](ledger_id)


def _peer_principal(peers: PeerGrants, identity: str) -> Principal:
    """A verified certificate without a token: its identity's grant, if it has one.

    A valid certificate whose identity is granted nothing is refused as an unknown caller would
    be (UNAUTHENTICATED): the CA vouches for who it is, not for what it may do.
    """
    principal = peers.principal_of(identity)
    if principal is None:
        message = f"client certificate {identity!r} is granted nothing (LEDGERD_MTLS_IDENTITIES)"
        raise unauthenticated(message, token_presented=False)
    return principal
