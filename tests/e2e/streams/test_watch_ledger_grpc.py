"""WatchLedger over a real gRPC server: order, resume, filters, refusals, expiry, shutdown.

The server is the composition root's, in process on a real socket, with the streaming
context's wake-up worker running as ``serve`` runs it; once on SQLite, once on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from ledgerd.kernel.principal import Principal
from ledgerd.main.contexts.streaming import STREAMING
from ledgerd.main.settings import Settings
from ledgerd.platform.auth.access_tokens import AccessTokenIssuer
from ledgerd.streaming.application.hub import StreamHub
from ledgerd.v1 import events_pb2 as events_pb
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc, streaming_pb2_grpc
from ledgerd.v1 import streaming_pb2 as stream_pb
from tests.e2e.grpc.conftest import GrpcApi, running_api
from tests.e2e.grpc.support import decode, pay
from tests.e2e.grpc.test_serve import LEDGERD, ledgerd_serve
from tests.unit.ledger.application.scenario import pay as app_pay

LEDGER = "books"
WAIT_S = 10.0
Metadata = tuple[tuple[str, str], ...]
# No bandwidth-delay probing: the client's receive window stays at its initial 64 KiB.
SMALL_WINDOW = (("grpc.http2.bdp_probe", 0),)


@dataclass(frozen=True, slots=True)
class Watching:
    api: GrpcApi
    streams: streaming_pb2_grpc.StreamServiceAsyncStub


@asynccontextmanager
async def watching(migrated_database_url: str, **settings: object) -> AsyncIterator[Watching]:
    async with running_api(migrated_database_url, settings=settings) as api:
        container = api.app.container
        wakeups = STREAMING.workers[0].run(container, await container.get(Settings), "serve")
        async with wakeups:
            yield Watching(api, streaming_pb2_grpc.StreamServiceStub(api.channel))


async def books(api: GrpcApi | GrpcApiLike, metadata: Metadata = ()) -> None:
    await api.stub.CreateLedger(pb.CreateLedgerRequest(id=LEDGER), metadata=metadata)
    for account in ("bank", "alice", "bob"):
        await api.stub.CreateAccount(
            pb.CreateAccountRequest(ledger=LEDGER, id=account, asset="USD/2"), metadata=metadata
        )


async def post(
    api: GrpcApi | GrpcApiLike, key: str, debit: str, credit: str, amount: int = 100
) -> None:
    await api.stub.PostTransfer(
        pb.PostTransferRequest(ledger=LEDGER, transfer=pay(key, debit, credit, amount))
    )


async def receive(
    call: grpc.aio.UnaryStreamCall[stream_pb.WatchLedgerRequest, stream_pb.StreamedEvent],
    count: int,
) -> list[stream_pb.StreamedEvent]:
    async with asyncio.timeout(WAIT_S):
        return [await call.read() for _ in range(count)]  # type: ignore[misc]


def kinds(events: list[stream_pb.StreamedEvent]) -> list[tuple[int, str]]:
    return [(event.sequence, event.type.removeprefix("ledgerd.v1.")) for event in events]


async def test_every_event_in_order_then_live_with_payloads(migrated_database_url: str) -> None:
    async with watching(migrated_database_url) as world:
        await books(world.api)
        call = world.streams.WatchLedger(stream_pb.WatchLedgerRequest(ledger=LEDGER, after=0))
        history = await receive(call, 4)
        assert kinds(history) == [
            (1, "LedgerCreated"),
            (2, "AccountCreated"),
            (3, "AccountCreated"),
            (4, "AccountCreated"),
        ]
        await post(world.api, "t1", "bank", "alice", 250)
        await post(world.api, "t2", "alice", "bob", 100)
        live = await receive(call, 2)
        assert kinds(live) == [(5, "TransferPosted"), (6, "TransferPosted")]
        posted = events_pb.TransferPosted()
        assert live[0].payload.Unpack(posted)
        assert [(entry.account, entry.amount) for entry in posted.entries] == [
            ("bank", 250),
            ("alice", 250),
        ]
        assert live[0].subject.startswith("transfers/")
        assert live[0].ledger == LEDGER
        assert len({event.id for event in history + live}) == 6
        call.cancel()


async def test_a_cut_stream_resumes_with_exactly_the_missed_events(
    migrated_database_url: str,
) -> None:
    async with watching(migrated_database_url) as world:
        await books(world.api)
        first = world.streams.WatchLedger(stream_pb.WatchLedgerRequest(ledger=LEDGER))
        await post(world.api, "t1", "bank", "alice")
        (got,) = await receive(first, 1)
        first.cancel()  # the client goes away
        for n in range(2, 5):
            await post(world.api, f"t{n}", "bank", "alice")
        resumed = world.streams.WatchLedger(
            stream_pb.WatchLedgerRequest(ledger=LEDGER, after=got.sequence)
        )
        missed = await receive(resumed, 3)
        assert [event.sequence for event in missed] == [6, 7, 8]
        await post(world.api, "t5", "bank", "alice")
        assert [event.sequence for event in await receive(resumed, 1)] == [9]
        resumed.cancel()


async def test_filters_by_account_and_by_type(migrated_sqlite_url: str) -> None:
    async with watching(migrated_sqlite_url) as world:
        await books(world.api)
        bob = world.streams.WatchLedger(
            stream_pb.WatchLedgerRequest(ledger=LEDGER, accounts=["bob"], after=0)
        )
        accounts = world.streams.WatchLedger(
            stream_pb.WatchLedgerRequest(
                ledger=LEDGER, types=["ledgerd.v1.AccountCreated"], after=0
            )
        )
        await post(world.api, "t1", "bank", "alice")
        await post(world.api, "t2", "alice", "bob")
        assert kinds(await receive(bob, 2)) == [(4, "AccountCreated"), (6, "TransferPosted")]
        assert [event.sequence for event in await receive(accounts, 3)] == [2, 3, 4]
        bob.cancel()
        accounts.cancel()


async def test_refusals_are_the_apis_own(migrated_sqlite_url: str) -> None:
    async with watching(migrated_sqlite_url) as world:
        await books(world.api)

        async def refused(request: stream_pb.WatchLedgerRequest) -> tuple[grpc.StatusCode, str]:
            call = world.streams.WatchLedger(request)
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await receive(call, 1)
            failure = decode(error.value)
            return error.value.code(), failure.reason

        assert await refused(stream_pb.WatchLedgerRequest(ledger="nowhere")) == (
            grpc.StatusCode.NOT_FOUND,
            "LEDGER_NOT_FOUND",
        )
        assert await refused(stream_pb.WatchLedgerRequest(ledger=LEDGER, after=99)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "POSITION_AHEAD",
        )
        assert await refused(
            stream_pb.WatchLedgerRequest(ledger=LEDGER, types=["ledgerd.v1.Nonsense"])
        ) == (grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED")
        assert await refused(stream_pb.WatchLedgerRequest(ledger=LEDGER, after=-1)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "VALIDATION_FAILED",
        )


async def test_tokens_decide_who_watches_and_for_how_long(migrated_sqlite_url: str) -> None:
    async with watching(migrated_sqlite_url, auth="required") as world:
        issuer = await world.api.app.container.get(AccessTokenIssuer)

        every_scope = frozenset({"ledger.read", "ledger.write", "ledgers.admin", "transfers.write"})

        def bearer(*ledgers: str, scopes: frozenset[str] = every_scope) -> Metadata:
            token = issuer.issue(Principal("watcher", scopes, frozenset(ledgers))).token
            return (("authorization", f"Bearer {token}"),)

        mine = bearer(LEDGER)
        await books(world.api, mine)
        # A token for another ledger is answered as if the ledger did not exist.
        elsewhere = world.streams.WatchLedger(
            stream_pb.WatchLedgerRequest(ledger=LEDGER), metadata=bearer("other")
        )
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await receive(elsewhere, 1)
        assert decode(hidden.value).reason == "LEDGER_NOT_FOUND"
        writer = world.streams.WatchLedger(
            stream_pb.WatchLedgerRequest(ledger=LEDGER),
            metadata=bearer(LEDGER, scopes=every_scope - {"ledger.read"}),
        )
        with pytest.raises(grpc.aio.AioRpcError) as unscoped:
            await receive(writer, 1)
        assert decode(unscoped.value).reason == "INSUFFICIENT_SCOPE"
        anonymous = world.streams.WatchLedger(stream_pb.WatchLedgerRequest(ledger=LEDGER))
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await receive(anonymous, 1)
        assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED

        call = world.streams.WatchLedger(
            stream_pb.WatchLedgerRequest(ledger=LEDGER, after=0), metadata=mine
        )
        assert len(await receive(call, 4)) == 4
        # The token's lifetime passes while the stream is open: the next event ends it.
        world.api.clock.advance(timedelta(hours=1))
        await world.api.app.post.post_one(LEDGER, app_pay("t-late", ("bank", "alice", 5)))
        with pytest.raises(grpc.aio.AioRpcError) as expired:
            await receive(call, 1)
        assert expired.value.code() == grpc.StatusCode.UNAUTHENTICATED
        failure = decode(expired.value)
        assert failure.details == {"reason": "expired", "position": "4"}


async def test_shutdown_ends_streams_with_where_to_resume(migrated_sqlite_url: str) -> None:
    async with watching(migrated_sqlite_url) as world:
        await books(world.api)
        call = world.streams.WatchLedger(stream_pb.WatchLedgerRequest(ledger=LEDGER, after=2))
        assert [event.sequence for event in await receive(call, 2)] == [3, 4]
        await STREAMING.before_drain(world.api.app.container)  # type: ignore[misc]
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await receive(call, 1)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        failure = decode(ended.value)
        assert failure.reason == "STREAM_ENDED"
        assert failure.details["position"] == "4"


async def test_a_client_that_never_reads_is_held_to_its_bound_and_slows_nobody(
    migrated_sqlite_url: str,
) -> None:
    async with (
        watching(migrated_sqlite_url, stream_buffer_events=32) as world,
        # A client whose HTTP/2 window stays small: what it does not read stays on the server.
        grpc.aio.insecure_channel(f"127.0.0.1:{world.api.port}", options=SMALL_WINDOW) as narrow,
    ):
        await books(world.api)
        request = stream_pb.WatchLedgerRequest(ledger=LEDGER, after=4)
        slow = streaming_pb2_grpc.StreamServiceStub(narrow).WatchLedger(request)
        fast = world.streams.WatchLedger(request)
        hub = await world.api.app.container.get(StreamHub)
        async with asyncio.timeout(WAIT_S):
            while hub.subscriptions < 2:  # noqa: ASYNC110 - polling the server's state
                await asyncio.sleep(0.01)
        posted = 0
        # 2 kB per event: 1.2 MB in all, far past any window.
        padding = {"note": "x" * 1000, "more": "y" * 1000}
        for batch in range(6):
            transfers = [pay(f"b{batch}-{n}", "bank", "alice", 1) for n in range(100)]
            for transfer in transfers:
                transfer.metadata.update(padding)
            answer = await world.api.stub.PostTransfers(
                pb.PostTransfersRequest(ledger=LEDGER, transfers=transfers)
            )
            assert all(result.HasField("transfer") for result in answer.results)
            posted += len(transfers)
        everything = list(range(5, 5 + posted))
        # The reader keeps up, live, while the other reads nothing at all.
        assert [event.sequence for event in await receive(fast, posted)] == everything
        feed = hub.feed(LEDGER)
        assert feed is not None
        (held,) = [s for s in feed.members if s.delivered < 4 + posted]
        assert held.buffered <= 32  # never more than its bound, whatever it missed
        assert held.lagged >= 1
        assert not held.live
        # Once it reads, it gets every event, in order, from the log.
        assert [event.sequence for event in await receive(slow, posted)] == everything
        slow.cancel()
        fast.cancel()


async def test_a_subscriber_on_one_server_sees_what_another_server_committed(
    migrated_postgres_url: str,
) -> None:
    # No polling: what A delivers, it heard of through PostgreSQL's NOTIFY.
    quiet = {"stream_poll_interval_seconds": "3600"}
    async with (
        ledgerd_serve(migrated_postgres_url, **quiet) as server_a,
        ledgerd_serve(migrated_postgres_url, **quiet) as server_b,
        grpc.aio.insecure_channel(f"127.0.0.1:{server_a.port}") as channel_a,
        grpc.aio.insecure_channel(f"127.0.0.1:{server_b.port}") as channel_b,
    ):
        server_a.drain()
        server_b.drain()
        through_b = GrpcApiLike(ledger_pb2_grpc.LedgerServiceStub(channel_b))
        await books(through_b)
        on_a = streaming_pb2_grpc.StreamServiceStub(channel_a).WatchLedger(
            stream_pb.WatchLedgerRequest(ledger=LEDGER, accounts=["alice"])
        )
        await asyncio.sleep(0.2)  # the stream is open on A before B posts
        for n in range(3):
            await post(through_b, f"t{n}", "bank", "alice")
        got = await receive(on_a, 3)
        assert kinds(got) == [(5, "TransferPosted"), (6, "TransferPosted"), (7, "TransferPosted")]
        on_a.cancel()


@dataclass(frozen=True, slots=True)
class GrpcApiLike:
    """What ``books`` and ``post`` use of a GrpcApi: a LedgerService client of any server."""

    stub: ledger_pb2_grpc.LedgerServiceAsyncStub


async def test_ledgerd_events_watch_prints_one_json_line_per_event(
    migrated_sqlite_url: str,
) -> None:
    async with watching(migrated_sqlite_url) as world:
        await books(world.api)
        environment = {**os.environ, "LEDGERD_SERVER": f"127.0.0.1:{world.api.port}"}
        environment.pop("LEDGERD_TOKEN", None)
        watcher = await asyncio.create_subprocess_exec(
            str(LEDGERD),
            *("events", "watch", LEDGER, "--account", "alice", "--after", "0", "--limit", "3"),
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await post(world.api, "t1", "bank", "alice", 250)
        await post(world.api, "t2", "bank", "bob", 100)  # not about alice
        await post(world.api, "t3", "alice", "bob", 50)
        async with asyncio.timeout(30):
            out, err = await watcher.communicate()
        assert watcher.returncode == 0, err.decode()
        lines = [json.loads(line) for line in out.decode().splitlines()]
        assert [(line["sequence"], line["type"]) for line in lines] == [
            ("3", "ledgerd.v1.AccountCreated"),
            ("5", "ledgerd.v1.TransferPosted"),
            ("7", "ledgerd.v1.TransferPosted"),
        ]
        payload = lines[1]["payload"]
        assert payload["@type"] == "type.googleapis.com/ledgerd.v1.TransferPosted"
        assert [(e["account"], e["amount"]) for e in payload["entries"]] == [
            ("bank", "250"),
            ("alice", "250"),
        ]

        refused = await asyncio.create_subprocess_exec(
            str(LEDGERD),
            *("events", "watch", "nowhere"),
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            out, err = await refused.communicate()
        assert refused.returncode == 2
        assert out == b""
        assert err.decode().strip() == "error LEDGER_NOT_FOUND: ledger nowhere does not exist"


def resident_bytes(pid: int) -> int:
    """The resident set size of process ``pid`` (Linux: /proc/PID/statm counts pages)."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


async def test_a_client_that_never_reads_does_not_grow_the_servers_memory(
    tmp_path: Path,
) -> None:
    """40 MB of events go by a client that reads none of them; the server grows far less."""
    url = f"sqlite+aiosqlite:///{tmp_path}/streams.db"
    async with (
        ledgerd_serve(url, stream_buffer_events="64") as served,
        grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel,
        # A client whose HTTP/2 window stays small: what it does not read stays on the server.
        grpc.aio.insecure_channel(f"127.0.0.1:{served.port}", options=SMALL_WINDOW) as narrow,
    ):
        served.drain()
        api = GrpcApiLike(ledger_pb2_grpc.LedgerServiceStub(channel))
        await books(api)
        fast = streaming_pb2_grpc.StreamServiceStub(channel).WatchLedger(
            stream_pb.WatchLedgerRequest(ledger=LEDGER, after=4)
        )
        padding = {f"note-{n}": "x" * 1000 for n in range(16)}  # 16 kB an event

        async def post_batch(batch: int) -> None:
            transfers = [pay(f"b{batch}-{n}", "bank", "alice", 1) for n in range(100)]
            for transfer in transfers:
                transfer.metadata.update(padding)
            answer = await api.stub.PostTransfers(
                pb.PostTransfersRequest(ledger=LEDGER, transfers=transfers)
            )
            assert all(result.HasField("transfer") for result in answer.results)

        # Warm up to a steady state (caches, pools, the allocator's arenas) with the reader
        # alone; then the other client subscribes and reads nothing from then on.
        warm = 10
        for batch in range(warm):
            await post_batch(batch)
            assert len(await receive(fast, 100)) == 100
        slow = streaming_pb2_grpc.StreamServiceStub(narrow).WatchLedger(
            stream_pb.WatchLedgerRequest(ledger=LEDGER)
        )
        await asyncio.sleep(0.5)  # subscribed: from now on it misses everything
        before = resident_bytes(served.process.pid)
        batches = 25
        received = 0
        for batch in range(warm, warm + batches):
            await post_batch(batch)
            received += len(await receive(fast, 100))  # the reader keeps up all along
        grown = resident_bytes(served.process.pid) - before
        missed_bytes = batches * 100 * 16_000
        assert received == batches * 100
        # Queued for the non-reader, the events alone would add 40 MB.
        assert grown < missed_bytes // 4, f"grew {grown / 1e6:.1f} MB"
        slow.cancel()
        fast.cancel()
