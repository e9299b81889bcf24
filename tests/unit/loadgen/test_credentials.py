"""How ``ledgerd bench`` authenticates: the options, the token keeper, the report's check.

The token endpoint here is a fake at the network's edge (an httpx transport); the real one is
exercised in tests/e2e/loadgen/test_tokens.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from dataclasses import replace

import httpx
import pytest

from ledgerd.loadgen.bench import authentication_check
from ledgerd.loadgen.config import BenchConfig, BenchConfigError, Target
from ledgerd.loadgen.credentials import (
    BenchAuth,
    TokenKeeper,
    bench_auth,
    renewal_margin_s,
)
from ledgerd.loadgen.stats import RunStats
from ledgerd.loadgen.transport import ApiError

GRPC_TARGET = Target("grpc", "127.0.0.1", 50051)
HTTP_TARGET = Target("http", "127.0.0.1", 8080)
SECRET = "s3cret-never-shown"
TOKEN_URL = "http://127.0.0.1:8080/oauth2/token"


def test_a_grpc_target_needs_a_token_url() -> None:
    with pytest.raises(BenchConfigError, match="--token-url"):
        bench_auth(GRPC_TARGET, None, "client-1", SECRET, None)
    auth = bench_auth(GRPC_TARGET, None, "client-1", SECRET, TOKEN_URL)
    assert auth is not None
    assert auth.token_url == TOKEN_URL


def test_an_http_target_serves_its_own_token_endpoint() -> None:
    auth = bench_auth(HTTP_TARGET, None, "client-1", SECRET, None)
    assert auth is not None
    assert auth.token_url == "http://127.0.0.1:8080/oauth2/token"


@pytest.mark.parametrize(
    ("token", "client_id", "secret", "url", "error"),
    [
        ("tok", "client-1", SECRET, None, "not both"),
        (None, "client-1", None, None, "both --client-id and --client-secret"),
        (None, None, SECRET, None, "both --client-id and --client-secret"),
        (None, "client-1", SECRET, "ftp://x/token", "http:// or https://"),
    ],
)
def test_inconsistent_options_are_refused(
    token: str | None, client_id: str | None, secret: str | None, url: str | None, error: str
) -> None:
    with pytest.raises(BenchConfigError, match=error):
        bench_auth(HTTP_TARGET, token, client_id, secret, url)


def test_no_options_means_no_token() -> None:
    assert bench_auth(GRPC_TARGET, None, None, None, None) is None


def test_neither_the_token_nor_the_secret_is_described_or_shown() -> None:
    by_secret = BenchAuth(client_id="client-1", client_secret=SECRET, token_url=TOKEN_URL)
    by_token = BenchAuth(token=SECRET)
    config = BenchConfig(target=GRPC_TARGET, auth=by_secret)
    texts = [
        json.dumps(config.describe()),
        json.dumps(replace(config, auth=by_token).describe()),
        repr(config),
        repr(by_token),
    ]
    for text in texts:
        assert SECRET not in text
    assert config.describe()["auth"] == {
        "method": "client_credentials",
        "client_id": "client-1",
        "token_url": TOKEN_URL,
    }


def test_renewal_comes_before_the_end_of_any_lifetime() -> None:
    assert renewal_margin_s(900) == 180  # a fifth of 15 min
    assert renewal_margin_s(60) == 12
    assert renewal_margin_s(30) == 10  # at least 10 s
    assert renewal_margin_s(1) == 0.5  # at most half the life


class FakeTokenEndpoint:
    """The server's ``POST /oauth2/token`` at the network edge: numbered tokens, short-lived."""

    def __init__(self, expires_in: int = 1, status: int = 200) -> None:
        self.expires_in, self.status = expires_in, status
        self.issued = 0
        self.basic: list[str] = []
        self.fourth_asked = asyncio.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.basic.append(request.headers.get("authorization", ""))
        assert request.content == b"grant_type=client_credentials"
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "invalid_client"})
        self.issued += 1
        if self.issued == 4:
            self.fourth_asked.set()
        body = {
            "access_token": f"token-{self.issued}",
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        return httpx.Response(200, json=body)


def _keeper(endpoint: FakeTokenEndpoint) -> TokenKeeper:
    auth = BenchAuth(client_id="client-1", client_secret=SECRET, token_url=TOKEN_URL)
    return TokenKeeper(auth, network=httpx.MockTransport(endpoint))


async def test_a_token_is_got_at_start_with_basic_client_authentication() -> None:
    endpoint = FakeTokenEndpoint(expires_in=900)
    keeper = _keeper(endpoint)
    await keeper.start()
    try:
        assert keeper.header.value == "Bearer token-1"
        assert keeper.header.grpc_metadata == (("authorization", "Bearer token-1"),)
        expected = base64.b64encode(f"client-1:{SECRET}".encode()).decode()
        assert endpoint.basic == [f"Basic {expected}"]
    finally:
        await keeper.stop()


async def test_a_token_is_renewed_before_it_expires() -> None:
    endpoint = FakeTokenEndpoint(expires_in=1)  # renewed every half second
    keeper = _keeper(endpoint)
    await keeper.start()
    try:
        async with asyncio.timeout(30):
            await endpoint.fourth_asked.wait()  # the third renewal asked: two are in place
        assert keeper.renewals >= 2
        assert keeper.header.value in {"Bearer token-3", "Bearer token-4"}
    finally:
        await keeper.stop()


async def test_refused_credentials_name_the_error_code_not_the_secret() -> None:
    keeper = _keeper(FakeTokenEndpoint(status=401))
    with pytest.raises(ApiError) as refused:
        await keeper.start()
    assert refused.value.code == "TOKEN_invalid_client"
    assert SECRET not in str(refused.value)


async def test_a_ready_token_is_sent_as_is() -> None:
    keeper = TokenKeeper(BenchAuth(token="ready"))
    await keeper.start()
    assert keeper.header.value == "Bearer ready"
    await keeper.stop()


def test_a_token_refused_during_the_run_fails_the_authentication_check() -> None:
    config = BenchConfig(target=GRPC_TARGET, auth=BenchAuth(token="t"))
    stats = RunStats(errors=Counter({"UNAUTHENTICATED": 12, "CONCURRENCY_CONFLICT": 1}))
    [check] = authentication_check(config, stats)
    assert not check.ok
    assert "UNAUTHENTICATED 12" in check.detail
    assert "CONCURRENCY_CONFLICT" not in check.detail
    [fine] = authentication_check(config, RunStats(token_renewals=2))
    assert fine.ok
    assert "2 token renewal(s)" in fine.detail


def test_without_a_token_and_without_refusals_there_is_no_check() -> None:
    assert authentication_check(BenchConfig(target=GRPC_TARGET), RunStats()) == []
