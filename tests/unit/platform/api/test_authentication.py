"""The authentication concern on its own: every refusal with its code, public services, tenancy.

Tokens are real (issued and verified by the platform's codec on a manual clock); the revocation
and live-grant ports are named fakes standing for identity's storage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.principal import ALL_LEDGERS, LedgerGrant, Principal, current_principal
from ledgerd.platform.api.authentication import (
    MAX_AUTHORIZATION_LENGTH,
    Authentication,
    CachedRevocations,
)
from ledgerd.platform.api.call_concerns import AccessLog
from ledgerd.platform.api.pipeline import GRPC, CallInfo, CallPipeline
from ledgerd.v1 import ledger_pb2 as pb
from tests.unit.platform.auth.conftest import TokenBench, token_bench

SERVICE = "ledgerd.v1.LedgerService"
GET_LEDGER = f"/{SERVICE}/GetLedger"
CREATE_LEDGER = f"/{SERVICE}/CreateLedger"
UNLISTED = f"/{SERVICE}/Unlisted"
OPEN_METHOD = f"/{SERVICE}/Open"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
READ, ADMIN = "ledger.read", "ledgers.admin"
HIDDEN = "HIDDEN"


@dataclass(frozen=True, slots=True)
class Entry:
    scope: str | None
    ledger_field: str | None = None


ACCESS = {
    GET_LEDGER: Entry(READ, "ledger"),
    CREATE_LEDGER: Entry(ADMIN),
    OPEN_METHOD: Entry(None),
}


@dataclass
class FakeRevocations:
    revoked: set[str] = field(default_factory=set)
    asked: int = 0

    async def is_revoked(self, family_id: str) -> bool:
        self.asked += 1
        return family_id in self.revoked


@dataclass
class FakeLiveGrants:
    """Grants made in storage after a token was issued: subject -> ledger ids."""

    granted: dict[str, set[str]] = field(default_factory=dict)

    async def may_use_ledger(self, principal: Principal, ledger_id: str) -> bool:
        return ledger_id in self.granted.get(principal.subject, set())


def _hidden(ledger_id: str) -> Exception:
    return LedgerdError(ErrorCode.VALIDATION_FAILED, f"{HIDDEN} {ledger_id}", {"ledger": ledger_id})


@dataclass
class World:
    bench: TokenBench = field(default_factory=token_bench)
    revocations: FakeRevocations = field(default_factory=FakeRevocations)
    live: FakeLiveGrants = field(default_factory=FakeLiveGrants)

    def concern(self) -> Authentication:
        return Authentication(
            verifier=self.bench.verifier,
            revocations=self.revocations,
            live_grants=self.live,
            access=ACCESS,
            hidden={SERVICE: _hidden},
            public_services=("grpc.health.v1.Health",),
        )

    def token(
        self,
        scopes: frozenset[str] = frozenset({READ}),
        ledgers: LedgerGrant = frozenset({"a"}),
        family: str | None = None,
    ) -> str:
        principal = Principal("client-1", scopes, ledgers)
        return self.bench.issuer.issue(principal, family).token


@pytest.fixture
def world() -> World:
    return World()


def _call(
    method: str = GET_LEDGER, authorization: str | None = None, request: object | None = None
) -> CallInfo:
    metadata = {} if authorization is None else {"authorization": authorization}
    return CallInfo(
        method=method,
        transport=GRPC,
        metadata=metadata,
        request_id="r-1",
        timeout_s=None,
        request=pb.GetLedgerRequest(ledger="a") if request is None else request,
    )


async def _principal_seen() -> Principal | None:
    return current_principal()


async def _refusal(concern: Authentication, call: CallInfo) -> LedgerdError:
    with pytest.raises(LedgerdError) as refused:
        await concern(call, _principal_seen)
    return refused.value


async def test_a_granted_call_runs_as_its_principal(world: World) -> None:
    call = _call(authorization=f"Bearer {world.token()}")
    principal = await world.concern()(call, _principal_seen)
    assert principal is not None
    assert principal.subject == "client-1"
    assert call.principal == principal
    assert current_principal() is None  # only inside the call


async def test_the_scheme_is_case_insensitive(world: World) -> None:
    call = _call(authorization=f"bearer  {world.token()}")
    assert await world.concern()(call, _principal_seen) is not None


async def test_public_services_and_public_methods_pass_without_a_token(world: World) -> None:
    concern = world.concern()
    assert await concern(_call(HEALTH_CHECK), _principal_seen) is None
    assert await concern(_call(OPEN_METHOD), _principal_seen) is None


async def test_no_token_is_unauthenticated_without_an_error_code(world: World) -> None:
    refused = await _refusal(world.concern(), _call())
    assert (refused.code, refused.message) == (ErrorCode.UNAUTHENTICATED, "missing access token")
    assert dict(refused.details) == {}


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "abc.def.ghi",  # no scheme
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer a.b.c d.e.f",  # two tokens
        "Bearer a.b.c,",
        "Bearer tök.en.x",  # non-ASCII
        "Bearer " + "a" * MAX_AUTHORIZATION_LENGTH,  # over 8 KiB
        "Bearer " + "a" * 64 * 1024,
    ],
)
async def test_a_malformed_authorization_is_unauthenticated(
    world: World, authorization: str
) -> None:
    refused = await _refusal(world.concern(), _call(authorization=authorization))
    assert (refused.code, refused.message) == (ErrorCode.UNAUTHENTICATED, "malformed authorization")
    assert dict(refused.details) == {"error": "invalid_token"}


async def test_a_refused_token_is_unauthenticated_with_its_reason(world: World) -> None:
    token = world.token()
    world.bench.clock.advance(timedelta(hours=1))
    refused = await _refusal(world.concern(), _call(authorization=f"Bearer {token}"))
    assert refused.code == ErrorCode.UNAUTHENTICATED
    assert refused.message == "access token refused: expired"
    assert dict(refused.details) == {"error": "invalid_token"}


async def test_a_token_of_a_revoked_family_is_unauthenticated(world: World) -> None:
    world.revocations.revoked.add("fam-1")
    call = _call(authorization=f"Bearer {world.token(family='fam-1')}")
    refused = await _refusal(world.concern(), call)
    assert (refused.code, refused.message) == (
        ErrorCode.UNAUTHENTICATED,
        "access token refused: revoked",
    )


async def test_a_method_without_an_access_entry_is_refused_even_to_an_admin(world: World) -> None:
    token = world.token(scopes=frozenset({READ, ADMIN}), ledgers=ALL_LEDGERS)
    refused = await _refusal(world.concern(), _call(UNLISTED, f"Bearer {token}"))
    assert refused.code == ErrorCode.INSUFFICIENT_SCOPE
    assert dict(refused.details) == {}


async def test_a_method_without_an_entry_asks_for_a_token_first(world: World) -> None:
    refused = await _refusal(world.concern(), _call(UNLISTED))
    assert refused.code == ErrorCode.UNAUTHENTICATED


async def test_a_missing_scope_is_insufficient_scope_naming_it(world: World) -> None:
    call = _call(CREATE_LEDGER, f"Bearer {world.token()}", pb.CreateLedgerRequest())
    refused = await _refusal(world.concern(), call)
    assert refused.code == ErrorCode.INSUFFICIENT_SCOPE
    assert dict(refused.details) == {"scope": ADMIN}


async def test_a_ledger_outside_the_grant_is_refused_as_the_service_hides_it(
    world: World,
) -> None:
    call = _call(authorization=f"Bearer {world.token()}", request=pb.GetLedgerRequest(ledger="b"))
    refused = await _refusal(world.concern(), call)
    assert refused == _hidden("b")


async def test_a_ledger_granted_since_the_token_was_issued_is_allowed(world: World) -> None:
    world.live.granted["client-1"] = {"b"}
    call = _call(authorization=f"Bearer {world.token()}", request=pb.GetLedgerRequest(ledger="b"))
    assert await world.concern()(call, _principal_seen) is not None


async def test_every_ledger_grant_passes_any_ledger(world: World) -> None:
    token = world.token(ledgers=ALL_LEDGERS)
    call = _call(authorization=f"Bearer {token}", request=pb.GetLedgerRequest(ledger="z"))
    assert await world.concern()(call, _principal_seen) is not None


async def test_a_call_without_its_request_message_is_refused_when_it_names_a_ledger(
    world: World,
) -> None:
    call = _call(authorization=f"Bearer {world.token()}")
    call.request = None  # a client stream
    refused = await _refusal(world.concern(), call)
    assert refused.code == ErrorCode.INSUFFICIENT_SCOPE


def test_a_service_with_ledger_checks_must_say_how_it_hides_a_ledger(world: World) -> None:
    with pytest.raises(ValueError, match=SERVICE):
        Authentication(
            verifier=world.bench.verifier,
            revocations=world.revocations,
            live_grants=world.live,
            access=ACCESS,
            hidden={},
            public_services=(),
        )


async def test_revocation_answers_are_cached_for_their_ttl() -> None:
    now = [0.0]
    source = FakeRevocations()
    cached = CachedRevocations(source, ttl_s=2.0, clock=lambda: now[0])
    assert not await cached.is_revoked("f")
    source.revoked.add("f")
    now[0] = 1.9
    assert not await cached.is_revoked("f")  # remembered
    now[0] = 2.0
    assert await cached.is_revoked("f")  # asked again once the TTL passed
    assert source.asked == 2  # two look-ups, no more


async def test_the_access_log_names_the_subject_and_never_the_token(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("ledgerd.test.authentication")
    pipeline = CallPipeline([AccessLog(logger), world.concern()])
    token = world.token()
    expired = world.token(family="fam-2")
    world.revocations.revoked.add("fam-2")
    with caplog.at_level(logging.DEBUG):
        await pipeline.run(_call(authorization=f"Bearer {token}"), _principal_seen)
        for authorization in (f"Bearer {expired}", f"Bearer {token} {token}", token):
            with pytest.raises(LedgerdError):
                await pipeline.run(_call(authorization=authorization), _principal_seen)
        with pytest.raises(LedgerdError):
            await pipeline.run(_call(CREATE_LEDGER, f"Bearer {token}"), _principal_seen)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].endswith(" sub=client-1")
    assert ["UNAUTHENTICATED" in line and "sub=" not in line for line in lines[1:4]] == [True] * 3
    assert "INSUFFICIENT_SCOPE" in lines[4]
    assert lines[4].endswith(" sub=client-1")  # known, though refused
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    for secret in (token, expired):
        for part in secret.split("."):
            assert part not in logged


@dataclass
class FakePeerGrants:
    """Certificate identities granted like clients (LEDGERD_MTLS_IDENTITIES's role)."""

    granted: dict[str, Principal] = field(default_factory=dict)

    def principal_of(self, identity: str) -> Principal | None:
        return self.granted.get(identity)


PAYOUTS = "spiffe://t/payouts"


def _with_peers(world: World) -> Authentication:
    payouts = Principal(PAYOUTS, frozenset({READ}), frozenset({"a"}))
    return Authentication(
        verifier=world.bench.verifier,
        revocations=world.revocations,
        live_grants=world.live,
        access=ACCESS,
        hidden={SERVICE: _hidden},
        public_services=(),
        peers=FakePeerGrants({PAYOUTS: payouts}),
    )


async def test_a_granted_peer_without_a_token_calls_as_its_grant(world: World) -> None:
    concern = _with_peers(world)
    call = _call()
    call.peer = PAYOUTS
    principal = await concern(call, _principal_seen)
    assert principal is not None
    assert principal.subject == PAYOUTS
    elsewhere = _call(request=pb.GetLedgerRequest(ledger="b"))
    elsewhere.peer = PAYOUTS
    assert (await _refusal(concern, elsewhere)).message == f"{HIDDEN} b"


async def test_a_peer_granted_nothing_is_unauthenticated(world: World) -> None:
    call = _call()
    call.peer = "spiffe://t/stranger"
    refused = await _refusal(_with_peers(world), call)
    assert refused.code == ErrorCode.UNAUTHENTICATED
    assert "granted nothing" in refused.message


async def test_a_token_is_judged_by_itself_whatever_the_peer(world: World) -> None:
    concern = _with_peers(world)
    call = _call(authorization="Bearer a.b.c")
    call.peer = PAYOUTS  # would be granted the call without the token
    refused = await _refusal(concern, call)
    assert refused.code == ErrorCode.UNAUTHENTICATED
    assert refused.message.startswith("access token refused")
    tokened = _call(authorization=f"Bearer {world.token()}")
    tokened.peer = PAYOUTS
    principal = await concern(tokened, _principal_seen)
    assert principal is not None
    assert principal.subject == "client-1"
