"""What the request pipeline costs a call: its concerns around a call that does nothing.

A thousand calls per round, on one event loop, through the pipeline ``ledgerd serve`` builds
(access log written to /dev/null at INFO, as ``serve`` writes it to stdout; error
classification; the deadline scope; an admission permit), beside the same calls made bare.
The difference per call is the pipeline's price on every RPC, gRPC or REST.

With ``LEDGERD_AUTH=required`` the pipeline also authenticates: the same calls carry a bearer
token (issued by the platform's codec, Ed25519) and go through the Authentication concern as
``serve`` wires it — without the cache of verified tokens (the signature checked on every
call) and with it. The differences from the plain pipeline are authentication's price per call.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

import pytest
from bench.micro.conftest import Benchmark

from ledgerd.kernel.clock import SystemClock
from ledgerd.kernel.principal import Principal
from ledgerd.main.call_pipeline import ACCESS_LOG, UNADMITTED_SERVICES, build_call_pipeline
from ledgerd.platform.api.access import MethodAccess
from ledgerd.platform.api.admission import Admission
from ledgerd.platform.api.authentication import Authentication, CachedRevocations, TokenVerifier
from ledgerd.platform.api.pipeline import GRPC, CallInfo, CallPipeline
from ledgerd.platform.api.verified_tokens import CachedTokenVerifier
from ledgerd.platform.auth.access_tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    TokenAudience,
)
from ledgerd.platform.auth.keys import KeyRing, SigningKeySet
from ledgerd.v1 import ledger_pb2 as pb

CALLS = 1_000
METHOD = "/ledgerd.v1.LedgerService/GetBalance"
LEDGER = "bench"
NAMES = TokenAudience(issuer="https://ledgerd.bench", audience="ledgerd")
PRINCIPAL = Principal("bench-client", frozenset({"ledger.read"}), frozenset({LEDGER}))
REQUEST = pb.GetBalanceRequest(ledger=LEDGER, account="a-1")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    yield running
    running.close()


@pytest.fixture
def access_log_to_devnull() -> Iterator[None]:
    logger = logging.getLogger(ACCESS_LOG)
    with open(os.devnull, "w", encoding="utf-8") as sink:  # noqa: PTH123 - a plain stream
        handler = logging.StreamHandler(sink)
        logger.addHandler(handler)
        level = logger.level
        logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.setLevel(level)
            logger.removeHandler(handler)


async def _answer() -> int:
    return 1


def _call(metadata: dict[str, str] | None = None) -> CallInfo:
    return CallInfo(METHOD, GRPC, metadata or {}, "bench-request", timeout_s=5.0, request=REQUEST)


class NeverRevoked:
    """Stands for identity's storage (the edge): no family is revoked."""

    async def is_revoked(self, family_id: str) -> bool:  # noqa: ARG002 - the port
        return False


class NoLiveGrants:
    """Stands for identity's storage: nothing granted beyond the token (never asked here)."""

    async def may_use_ledger(self, principal: Principal, ledger_id: str) -> bool:  # noqa: ARG002
        return False


def _authenticated_pipeline(*, cached: bool) -> tuple[CallPipeline, dict[str, str]]:
    """The pipeline as ``serve`` builds it with authentication, and a call's metadata."""
    clock = SystemClock()
    ring = KeyRing(SigningKeySet.generate(clock.now()))
    token = AccessTokenIssuer(ring, NAMES, timedelta(minutes=15), clock).issue(PRINCIPAL, "fam-1")
    verifier: TokenVerifier = AccessTokenVerifier(ring, NAMES, clock)
    if cached:
        verifier = CachedTokenVerifier(verifier, ring, clock)
    authentication = Authentication(
        verifier=verifier,
        revocations=CachedRevocations(NeverRevoked()),  # as serve wires it: TTL-cached
        live_grants=NoLiveGrants(),
        access={METHOD: MethodAccess("ledger.read", "ledger")},
        hidden={"ledgerd.v1.LedgerService": KeyError},
        public_services=UNADMITTED_SERVICES,
    )
    pipeline = build_call_pipeline(Admission(64, retry_after_s=0.5), authentication)
    return pipeline, {"authorization": f"Bearer {token.token}"}


def _rounds(
    loop: asyncio.AbstractEventLoop, one: Callable[[], Awaitable[int]]
) -> Callable[[], int]:
    async def many() -> int:
        total = 0
        for _ in range(CALLS):
            total += await one()
        return total

    return lambda: loop.run_until_complete(many())


def test_calls_without_the_pipeline(benchmark: Benchmark, loop: asyncio.AbstractEventLoop) -> None:
    assert benchmark(_rounds(loop, _answer)) == CALLS


@pytest.mark.usefixtures("access_log_to_devnull")
def test_calls_through_the_pipeline(benchmark: Benchmark, loop: asyncio.AbstractEventLoop) -> None:
    pipeline: CallPipeline = build_call_pipeline(Admission(64, retry_after_s=0.5))
    assert benchmark(_rounds(loop, lambda: pipeline.run(_call(), _answer))) == CALLS


@pytest.mark.usefixtures("access_log_to_devnull")
def test_calls_through_the_pipeline_with_authentication(
    benchmark: Benchmark, loop: asyncio.AbstractEventLoop
) -> None:
    pipeline, metadata = _authenticated_pipeline(cached=False)
    assert benchmark(_rounds(loop, lambda: pipeline.run(_call(metadata), _answer))) == CALLS


@pytest.mark.usefixtures("access_log_to_devnull")
def test_calls_through_the_pipeline_with_authentication_and_its_token_cache(
    benchmark: Benchmark, loop: asyncio.AbstractEventLoop
) -> None:
    pipeline, metadata = _authenticated_pipeline(cached=True)
    assert benchmark(_rounds(loop, lambda: pipeline.run(_call(metadata), _answer))) == CALLS
