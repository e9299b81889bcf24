"""One real ``ledgerd serve`` with ``LEDGERD_AUTH=required``, shared by a module's attacks.

Starting a server costs seconds and ``make test`` is near its budget, so each module starts one
(a module-scoped fixture) and every attack in it runs against it. Clients are made with
``ledgerd clients create`` and users with ``ledgerd users create``, as an operator does; tokens
come from the server's ``/oauth2/token``. Every credential handed out is remembered, so that the
module can finally grep the server's whole output for each of them.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx

from ledgerd.identity.domain.scopes import Scope
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc
from tests.e2e.grpc.support import decode, pay
from tests.e2e.grpc.test_serve import LEDGERD, Served, ledgerd_environment, ledgerd_serve

ISSUER = "http://ledgerd.test"
ALL_SCOPES = tuple(str(scope) for scope in Scope)
# The ledger the attacks aim at, with money in it, and a second one for tenancy.
LEDGER = "books"
OTHER_LEDGER = "other-books"
COMMAND_WAIT_S = 60.0
CALL_TIMEOUT_S = 10.0
REST_LINE = re.compile(r"^REST\s+(http://127\.0\.0\.1:\d+)/")
# Settings every security server runs with: refusals are decided now, not up to 2 s later.
SETTINGS = {"auth": "required", "token_issuer": ISSUER, "revocation_cache_seconds": "0"}


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str

    @property
    def basic(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.client_id, self.secret)


@dataclass(frozen=True)
class Refusal:
    """How a refused call ended, on either transport: its code and status, and its details."""

    code: str
    status: int | str  # the HTTP status, or the gRPC status name
    message: str
    details: dict[str, Any]
    www_authenticate: str | None = None

    @classmethod
    def of_http(cls, answer: httpx.Response) -> Refusal:
        """The refusal an HTTP answer carries (the API's problem body, the challenge header)."""
        problem = answer.json()
        return cls(
            problem["code"],
            answer.status_code,
            problem["message"],
            problem.get("details", {}),
            answer.headers.get("www-authenticate"),
        )


@dataclass
class Deployment:
    database_url: str
    served: Served
    http: httpx.AsyncClient
    channel: grpc.aio.Channel
    # Every secret and token the module was given: none may appear in the server's output.
    credentials: list[str] = field(default_factory=list)

    async def ledgerd(self, *argv: str, stdin: str | None = None, **settings: str) -> str:
        """``ledgerd ARGV`` on this database to its end (it must succeed); its output."""
        process = await asyncio.create_subprocess_exec(
            str(LEDGERD),
            *argv,
            env=ledgerd_environment(self.database_url, token_issuer=ISSUER, **settings),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(COMMAND_WAIT_S):
            out, err = await process.communicate(None if stdin is None else stdin.encode())
        assert process.returncode == 0, err.decode()
        return out.decode()

    async def client(
        self, name: str, *options: str, scopes: tuple[str, ...] = ALL_SCOPES
    ) -> Client:
        """A client made by ``ledgerd clients create NAME --scopes … OPTIONS``."""
        created = json.loads(
            await self.ledgerd("clients", "create", name, "--scopes", ",".join(scopes), *options)
        )
        secret = created.get("client_secret") or ""
        if secret:
            self.credentials.append(secret)
        return Client(created["client_id"], secret)

    async def token(self, client: Client, scopes: tuple[str, ...] | None = None) -> str:
        """An access token for ``client`` by the client-credentials grant.

        With ``scopes``, narrowed to them; without, the client's whole grant.
        """
        form = {"grant_type": "client_credentials"}
        if scopes is not None:
            form["scope"] = " ".join(scopes)
        answer = await self.http.post("/oauth2/token", data=form, auth=client.basic)
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        self.credentials.append(token)
        return token

    async def snapshot(self, admin: str) -> list[Any]:
        """What no refused call may change: the ledgers, accounts, balances, journal, entries."""
        headers = {"authorization": f"Bearer {admin}"}
        paths = (
            "/v1/ledgers",
            f"/v1/ledgers/{LEDGER}/accounts",
            f"/v1/ledgers/{LEDGER}/transfers",
            f"/v1/ledgers/{LEDGER}/accounts/alice/balance",
            f"/v1/ledgers/{LEDGER}/accounts/alice/entries",
            f"/v1/ledgers/{LEDGER}/accounts/bank/entries",
            f"/v1/ledgers/{OTHER_LEDGER}/accounts",
        )
        answers = await asyncio.gather(*(self.http.get(path, headers=headers) for path in paths))
        for path, answer in zip(paths, answers, strict=True):
            assert answer.status_code == 200, (path, answer.text)
        return [answer.json() for answer in answers]

    async def books(self, admin: str) -> None:
        """The two ledgers, each with a bank and alice, and a transfer posted on the first."""
        headers = {"authorization": f"Bearer {admin}"}
        for ledger in (LEDGER, OTHER_LEDGER):
            made = await self.http.post("/v1/ledgers", json={"id": ledger}, headers=headers)
            assert made.status_code == 200, made.text
            for account in ("bank", "alice"):
                opened = await self.http.post(
                    f"/v1/ledgers/{ledger}/accounts",
                    json={"id": account, "asset": "USD/2"},
                    headers=headers,
                )
                assert opened.status_code == 200, opened.text
        posted = await self.http.post(
            f"/v1/ledgers/{LEDGER}/transfers",
            json={
                "idempotency_key": "opening",
                "legs": [{"debit_account": "bank", "credit_account": "alice", "amount": "2500"}],
            },
            headers=headers,
        )
        assert posted.status_code == 200, posted.text

    # --- the attack itself: moving money, on either transport -------------------------------

    async def post_over_rest(
        self, authorization: str | bytes | None, ledger: str = LEDGER
    ) -> Refusal | None:
        """A transfer from bank to alice over REST with this ``Authorization`` header value."""
        # Bytes, so that a value that is no ASCII goes out as it is (httpx would refuse a str).
        value = authorization.encode() if isinstance(authorization, str) else authorization
        headers = [] if value is None else [(b"authorization", value)]
        answer = await self.http.post(
            f"/v1/ledgers/{ledger}/transfers",
            json={
                "idempotency_key": "attack",
                "legs": [{"debit_account": "bank", "credit_account": "alice", "amount": "100"}],
            },
            headers=headers,
        )
        if answer.status_code == 200:
            return None
        return Refusal.of_http(answer)

    async def post_over_grpc(
        self, authorization: str | bytes | None, ledger: str = LEDGER
    ) -> Refusal | None:
        """The same transfer over gRPC with this ``authorization`` metadata value."""
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        metadata = () if authorization is None else (("authorization", authorization),)
        return await self.post_over_grpc_with(metadata, ledger)

    async def post_over_grpc_with(
        self, metadata: tuple[tuple[str, str], ...], ledger: str = LEDGER
    ) -> Refusal | None:
        """The same transfer over gRPC with this metadata."""
        stub = ledger_pb2_grpc.LedgerServiceStub(self.channel)
        request = pb.PostTransferRequest(
            ledger=ledger, transfer=pay("attack", "bank", "alice", 100)
        )
        try:
            await stub.PostTransfer(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            failure = decode(error)
            return Refusal(failure.reason, failure.status.name, failure.message, failure.details)
        return None


@asynccontextmanager
async def deployment(database_url: str, **settings: str) -> AsyncIterator[Deployment]:
    """``ledgerd serve`` on a fresh database, with clients for the HTTP and gRPC ports."""
    async with ledgerd_serve(database_url, **{**SETTINGS, **settings}) as served:
        rest = REST_LINE.match(await served.read_until(lambda line: bool(REST_LINE.match(line))))
        assert rest is not None
        served.drain()
        async with (
            httpx.AsyncClient(base_url=rest.group(1), timeout=COMMAND_WAIT_S) as http,
            grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel,
        ):
            yield Deployment(database_url, served, http, channel)


def leaked(deployment: Deployment) -> list[str]:
    """Credentials the module was given, or parts of them, found anywhere in the server's output.

    A token's parts count alone too: its payload and signature segments (the header is the same
    for every token of a key, and secret-free).
    """
    log = deployment.served.log
    parts = {
        part
        for credential in deployment.credentials
        for part in (credential, *credential.split(".")[1:])
        if part
    }
    return sorted(part for part in parts if part in log)
