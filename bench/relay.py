"""The outbox relay to each broker: relay throughput, and commit-to-consume lag.

For each publisher — a null one (returns at once: the outbox's own ceiling), the in-process
hub (the baseline), NATS JetStream, Redis Streams, RabbitMQ, Kafka (a tansu this script
starts) and SQS (moto's server, started here too) — on a fresh PostgreSQL database each:

1. **Relay throughput.** With no relay running, N transfers are posted (500 per unit of work)
   so that the outbox holds N events; one ``OutboxRelay`` (the product's batch size) then
   drains all of it to the broker, timed: events/s, and this process's CPU time per event.
   A subscriber made beforehand then reads them back, timed apart ("subscriber events/s"),
   and must hold all N distinct event ids. The hub's subscriber reads during the drain
   instead: the hub's buffer (10,000) would stop the relay otherwise.
2. **Commit-to-consume lag.** A child process runs what ``ledgerd worker`` runs (the relay,
   woken by PostgreSQL's NOTIFY: ``ledgerd.main.relaying``) and a subscriber of the broker;
   this process posts single transfers through the batcher at a steady rate. The lag of a
   transfer is when the subscriber received its event (subject ``transfers/<id>``) less when
   the posting call returned, both ``time.monotonic()`` (CLOCK_MONOTONIC: one clock for every
   process on the machine). Every posted transfer's event must arrive, or the run fails.

SQS runs on moto's emulator with a smaller load (``--sqs-events``, ``--sqs-rate``): moto
5.2 scans the whole queue (several times) for every message sent, received or deleted, so a
``SendMessageBatch`` of 10 costs about 1 ms per message already queued: 20,000 events into
one queue would take it hours, and at 200 transfers/s it falls behind for good. Its figures
are the emulator's, not SQS's.

Each broker channel (stream, topic, exchange, queue) is named for this run and phase and
deleted afterwards, so runs and tests beside them do not see each other's messages. A broker
that cannot be reached is reported with the reason and left out. Writes
bench/results/relay.json and prints a table.

    python bench/relay.py [--events 20000] [--rate 200] [--duration 10s] [--only nats]
                          [--batch-size 500] [--sqs-events 500] [--sqs-rate 20]
                          [--server-url URL] [--output PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dishka import AsyncContainer, Provider, Scope, provide
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.money import Asset
from ledgerd.ledger.application.create_ledger import CreateLedger, CreateLedgerHandler
from ledgerd.ledger.application.open_account import OpenAccount, OpenAccountHandler
from ledgerd.ledger.application.post_transfers import (
    PostTransfers,
    PostTransfersHandler,
    TransferPoster,
)
from ledgerd.ledger.domain.model import AccountFlags
from ledgerd.ledger.domain.requests import LegRequest, TransferRequest
from ledgerd.loadgen.pgbench import ServerAddress, drop_database, recreate_database
from ledgerd.loadgen.report import machine_info
from ledgerd.main.container import build_container
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.main.relaying import relaying
from ledgerd.main.settings import Settings
from ledgerd.platform.concurrency import Notifier
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.messaging.ports import Delivery, Publisher, Subscriber
from ledgerd.platform.outbox.relay import OutboxRelay, RelayOptions
from ledgerd.platform.outbox.store import OutboxStore

# The brokers' test helpers (starting tansu and moto) live in tests/, which is not installed:
# run from anywhere, this script finds them beside itself.
SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.messaging import sqs_emulator  # noqa: E402 - needs the path above
from tests.integration.messaging.tansu_broker import (  # noqa: E402
    TansuUnavailableError,
    tansu_broker,
)

RESULTS = SCRIPT.parent / "results"
DEFAULT_SERVER_URL = os.environ.get(
    "LEDGERD_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
DATABASE = "ledgerd_relay_bench"
NATS_URL = os.environ.get("LEDGERD_BENCH_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("LEDGERD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("LEDGERD_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
PUBLISHERS = ("null", "hub", "nats", "redis", "rabbitmq", "kafka", "sqs")
ACCOUNTS = 100
FILL_CHUNK = 500  # transfers per unit of work while filling the outbox
GROUP = "relaybench"  # the subscribers' consumer group / durable consumer / queue suffix
WARM_UP = 20  # transfers posted (and awaited) before the lag is measured
KAFKA_SESSION_S = 4.0  # tansu holds a group join for half of it
# Bounds for a hung broker to fail the run instead of stalling it; not measurements.
CONNECT_WAIT_S = 15.0
RECEIVE_WAIT_S = 180.0
LAG_RECEIVE_WAIT_S = 60.0
CHILD_WAIT_S = 60.0
LISTEN_WAIT_S = 15.0
DEFAULT_BATCH = Settings.model_fields["relay_batch_size"].default

_T = TypeVar("_T")


class LostEventsError(Exception):
    """Not every event reached the subscriber: the run failed (never a figure)."""


class UnreachableError(Exception):
    """The broker could not be reached: it is left out of the run, with this reason."""


# --- brokers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One broker channel for one phase of one run; JSON-able, for the lag's child process.

    ``name``: the stream (NATS, Redis), exchange (RabbitMQ), topic (Kafka) or queue URL (SQS).
    """

    kind: str
    address: str = ""
    name: str = ""


class NullPublisher:
    """Takes every batch at once: what is left is the outbox's own cost."""

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        del envelopes  # accepted, and dropped

    async def aclose(self) -> None:
        return None


async def new_target(kind: str, address: str, phase: str) -> Target:
    tag = f"{phase}{uuid.uuid4().hex[:10]}"
    match kind:
        case "null" | "hub":
            return Target(kind)
        case "nats":
            return Target(kind, address, f"LEDGERD_BENCH_{tag.upper()}")
        case "redis":
            return Target(kind, address, f"ledgerd:bench:{tag}:events")
        case "rabbitmq" | "kafka":
            return Target(kind, address, f"ledgerd.bench.{tag}")
        case "sqs":
            from ledgerd.platform.messaging.sqs import create_fifo_queue  # noqa: PLC0415

            url = await create_fifo_queue(
                f"ledgerd-bench-{tag}.fifo", region=sqs_emulator.REGION, endpoint_url=address
            )
            return Target(kind, address, url)
    msg = f"unknown publisher {kind!r}"
    raise ValueError(msg)


# Each broker's client is imported when that broker is measured, as the product does it
# (ledgerd.main.publishers): a run with --only pays for one library, not six.


async def open_publisher(  # noqa: PLR0911 - one return per broker
    target: Target, hub: InProcessHub
) -> Publisher:
    match target.kind:
        case "null":
            return NullPublisher()
        case "hub":
            return hub
        case "nats":
            from ledgerd.platform.messaging.nats import NatsPublisher  # noqa: PLC0415

            subjects = target.name.lower().replace("_", ".")
            return await NatsPublisher.connect(
                target.address, stream=target.name, subject_prefix=subjects
            )
        case "redis":
            from ledgerd.platform.messaging.redis_streams import (  # noqa: PLC0415
                RedisStreamsPublisher,
            )

            return await RedisStreamsPublisher.connect(target.address, stream=target.name)
        case "rabbitmq":
            from ledgerd.platform.messaging.rabbitmq import RabbitMqPublisher  # noqa: PLC0415

            return await RabbitMqPublisher.connect(target.address, exchange=target.name)
        case "kafka":
            from ledgerd.platform.messaging.kafka import KafkaPublisher  # noqa: PLC0415

            return await KafkaPublisher.connect(target.address, topic=target.name)
        case "sqs":
            from ledgerd.platform.messaging.sqs import SqsPublisher  # noqa: PLC0415

            return await SqsPublisher.connect(
                target.name, region=sqs_emulator.REGION, endpoint_url=target.address
            )
    msg = f"unknown publisher {target.kind!r}"
    raise ValueError(msg)


async def open_subscriber(target: Target, hub: InProcessHub) -> Subscriber:
    """A subscriber that gets everything published from now on (made before publishing)."""
    match target.kind:
        case "hub":
            return hub.subscribe()
        case "nats":
            from ledgerd.platform.messaging.nats import NatsSubscriber  # noqa: PLC0415

            subjects = target.name.lower().replace("_", ".")
            return await NatsSubscriber.connect(
                target.address, GROUP, stream=target.name, subject_prefix=subjects
            )
        case "redis":
            from ledgerd.platform.messaging.redis_streams import (  # noqa: PLC0415
                RedisStreamsSubscriber,
            )

            return await RedisStreamsSubscriber.connect(target.address, GROUP, stream=target.name)
        case "rabbitmq":
            from ledgerd.platform.messaging.rabbitmq import RabbitMqSubscriber  # noqa: PLC0415

            return await RabbitMqSubscriber.connect(
                target.address, f"{target.name}.{GROUP}", exchange=target.name
            )
        case "kafka":
            from ledgerd.platform.messaging.kafka import KafkaSubscriber  # noqa: PLC0415

            return await KafkaSubscriber.connect(
                target.address, GROUP, topic=target.name, session_timeout_s=KAFKA_SESSION_S
            )
        case "sqs":
            from ledgerd.platform.messaging.sqs import SqsSubscriber  # noqa: PLC0415

            return await SqsSubscriber.connect(
                target.name, region=sqs_emulator.REGION, endpoint_url=target.address
            )
    msg = f"no subscriber for {target.kind!r}"
    raise ValueError(msg)


async def remove(target: Target) -> None:
    """Delete what the run made on a shared broker (tansu and moto go with their process)."""
    match target.kind:
        case "nats":
            import nats  # noqa: PLC0415

            # Two tries, then an error: the client's defaults keep trying for minutes.
            connection = await nats.connect(
                target.address, connect_timeout=2, max_reconnect_attempts=1, reconnect_time_wait=0
            )
            try:
                await connection.jetstream().delete_stream(target.name)
            finally:
                await connection.close()
        case "redis":
            import redis.asyncio  # noqa: PLC0415

            from ledgerd.platform.messaging.redis_streams import dedupe_key  # noqa: PLC0415

            client = redis.asyncio.Redis.from_url(target.address)
            try:
                marks = [key async for key in client.scan_iter(dedupe_key(target.name, "*"), 1000)]
                await client.delete(target.name)
                for start in range(0, len(marks), 1000):
                    await client.delete(*marks[start : start + 1000])
            finally:
                await client.aclose()
        case "rabbitmq":
            import aio_pika  # noqa: PLC0415

            amqp = await aio_pika.connect(target.address)
            try:
                channel = await amqp.channel()
                await channel.queue_delete(f"{target.name}.{GROUP}")
                await channel.exchange_delete(target.name)
            finally:
                await amqp.close()


Received = dict[str, float]  # a transfer event's key (id or subject): when it was received


async def receive(
    subscriber: Subscriber,
    key: Callable[[Envelope], str],
    seen: Received,
    done: Callable[[Received], bool],
) -> None:
    """Read (and ack) deliveries, noting each transfer event in ``seen``, until ``done``.

    Only the first receipt of an event counts: a redelivery is not a second event.
    """
    deliveries: AsyncIterator[Delivery] = subscriber.deliveries()
    try:
        async for delivery in deliveries:
            envelope = delivery.envelope
            if envelope is not None and envelope.subject.startswith("transfers/"):
                seen.setdefault(key(envelope), time.monotonic())
            await delivery.ack()
            if done(seen):
                return
    finally:
        if isinstance(deliveries, AsyncGenerator):  # hands back what it fetched and held
            await deliveries.aclose()


def by_id(envelope: Envelope) -> str:
    return envelope.id


def by_subject(envelope: Envelope) -> str:
    return envelope.subject


# --- the application ----------------------------------------------------------------------


class _UsePublisher(Provider):
    """The container's publisher replaced by one built here (names unique to this run)."""

    scope = Scope.APP

    def __init__(self, publisher: Publisher) -> None:
        super().__init__()
        self._publisher = publisher

    @provide(override=True)
    def publisher(self) -> Publisher:
        return self._publisher


async def open_ledger(container: AsyncContainer, ledger: str) -> None:
    await (await container.get(CreateLedgerHandler))(CreateLedger(ledger, ledger))
    open_account = await container.get(OpenAccountHandler)
    for account in ["bank", *(f"a{n}" for n in range(ACCOUNTS))]:
        await open_account(OpenAccount(ledger, account, Asset("USD", 2), AccountFlags()))


def transfer(key: str, n: int) -> TransferRequest:
    return TransferRequest(key, (LegRequest("bank", f"a{n % ACCOUNTS}", 1),))


async def unpublished(store: OutboxStore) -> int:
    return sum(lag.unpublished for lag in await store.lag())


# --- phase 1: relay throughput -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    events: int  # the relay drains this many
    batch_size: int
    rate: float  # transfers/s posted while the lag is measured
    duration: float

    @classmethod
    def of(cls, kind: str, arguments: argparse.Namespace) -> Load:
        sqs = kind == "sqs"
        return cls(
            events=arguments.sqs_events if sqs else arguments.events,
            batch_size=arguments.batch_size,
            rate=arguments.sqs_rate if sqs else arguments.rate,
            duration=arguments.duration,
        )


async def throughput(
    container: AsyncContainer, target: Target, load: Load, made: list[Target]
) -> dict[str, Any]:
    """Relay throughput to ``target``; adds it to ``made`` once it exists on the broker."""
    # Connected first: a broker that cannot be reached is left out before any work is done.
    hub = InProcessHub()
    publisher = await _connected(open_publisher(target, hub), target)
    made.append(target)  # the publisher declares its stream, exchange or topic
    subscriber = None
    try:
        if target.kind != "null":
            subscriber = await _connected(open_subscriber(target, hub), target)
        store = await container.get(OutboxStore)
        result: dict[str, Any] = {"events": load.events, "fill_s": await fill(container, load)}
        return result | await _drain(store, publisher, subscriber, load.events, load.batch_size)
    finally:
        if subscriber is not None:
            await subscriber.aclose()
        await publisher.aclose()
        await hub.aclose()


async def fill(container: AsyncContainer, load: Load) -> float:
    """Post transfers until the outbox holds ``load.events`` events; how long it took (s)."""
    ledger = "throughput"
    store = await container.get(OutboxStore)
    await open_ledger(container, ledger)
    # The ledger's own events out of the way (unmeasured): the outbox then holds transfers only.
    await OutboxRelay(store, NullPublisher()).sweep()
    handler = await container.get(PostTransfersHandler)
    began = time.perf_counter()
    for start in range(0, load.events, FILL_CHUNK):
        numbers = range(start, min(load.events, start + FILL_CHUNK))
        await handler(PostTransfers(ledger, [transfer(f"t{n}", n) for n in numbers]))
    took = time.perf_counter() - began
    held = await unpublished(store)
    if held != load.events:
        msg = f"the outbox holds {held} events, not {load.events}"
        raise RuntimeError(msg)
    return round(took, 2)


async def _drain(
    store: OutboxStore,
    publisher: Publisher,
    subscriber: Subscriber | None,
    events: int,
    batch_size: int,
) -> dict[str, Any]:
    """Time one relay emptying the outbox; then the subscriber reading it all back."""
    seen: Received = {}
    alongside = None
    if isinstance(publisher, InProcessHub) and subscriber is not None:
        # The hub holds 10,000 envelopes per subscriber: its reader must run meanwhile.
        alongside = asyncio.create_task(receive(subscriber, by_id, seen, _all(events)))
    try:
        relay = OutboxRelay(store, publisher, options=RelayOptions(batch_size=batch_size))
        wall, cpu = time.perf_counter(), time.process_time()
        published = await relay.sweep()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if published != events or relay.stats.failures:
            reasons = {lag.last_error for lag in await store.lag() if lag.last_error}
            msg = f"the relay published {published} of {events} events: {reasons or 'no error'}"
            raise LostEventsError(msg)
        result: dict[str, Any] = {
            "drain_s": round(wall, 3),
            "events_per_s": round(events / wall),
            "relay_cpu_s": round(cpu, 3),
            "cpu_us_per_event": round(cpu / events * 1e6, 1),
        }
        if subscriber is None:
            return result
        began = time.perf_counter()
        try:
            async with asyncio.timeout(RECEIVE_WAIT_S):
                await (alongside or receive(subscriber, by_id, seen, _all(events)))
        except TimeoutError:
            msg = f"the subscriber received {len(seen)} of {events} events in {RECEIVE_WAIT_S} s"
            raise LostEventsError(msg) from None
    finally:
        if alongside is not None and not alongside.done():
            alongside.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await alongside
    # The hub's reader ran alongside the drain: its time counts from the drain's start.
    consume_s = time.perf_counter() - began + (wall if alongside is not None else 0.0)
    return result | {
        "received_distinct": len(seen),
        "consume_s": round(consume_s, 3),
        "consume_events_per_s": round(events / consume_s),
        "consumed_during_drain": alongside is not None,
    }


def _all(count: int) -> Callable[[Received], bool]:
    return lambda seen: len(seen) >= count


async def _connected(connecting: Awaitable[_T], target: Target) -> _T:
    """The adapter's connect; a broker that cannot be reached makes ``UnreachableError``."""
    try:
        async with asyncio.timeout(CONNECT_WAIT_S):
            return await connecting
    except Exception as error:  # whatever stops connecting: left out, with the reason
        msg = f"{target.kind} at {target.address}: {type(error).__name__}: {error}"
        raise UnreachableError(msg) from error


# --- phase 2: commit-to-consume lag -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Posting:
    due: float  # when the steady schedule called for it (monotonic)
    called: float
    returned: float  # after its commit


async def lag(
    container: AsyncContainer, target: Target, database_url: str, load: Load
) -> dict[str, Any]:
    ledger = "lag"
    await open_ledger(container, ledger)
    poster = await container.get(TransferPoster)
    spec = {"database_url": database_url, "target": asdict(target), "batch": load.batch_size}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "--lag-side",
        json.dumps(spec),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 24,  # one line holds every receipt
    )
    try:
        await _answer(child, "ready")
        warm_up = await post_steadily(poster, ledger, "w", WARM_UP, load.rate)
        _, before = await _expect(child, warm_up)
        count = max(2, round(load.rate * load.duration))
        cpu = time.process_time()
        posted = await post_steadily(poster, ledger, "m", count, load.rate)
        cpu = time.process_time() - cpu
        received, after = await _expect(child, posted)
    finally:
        await _stop(child)
    lags_ms = sorted((received[subject] - p.returned) * 1000 for subject, p in posted.items())
    posting_ms = sorted((p.returned - p.called) * 1000 for p in posted.values())
    first = min(p.called for p in posted.values())
    last_call = max(p.called for p in posted.values())
    last = max(p.returned for p in posted.values())
    return {
        "rate": load.rate,
        "duration_s": load.duration,
        "posted": len(posted),
        "calls_per_s": round((len(posted) - 1) / (last_call - first), 1),
        # How far behind its schedule a call started (this process's event loop was busy).
        "latest_start_ms": round(max(p.called - p.due for p in posted.values()) * 1000, 1),
        "posting_ms": _summary(posting_ms),
        "lag_ms": _summary(lags_ms),
        # CPU time while posting, as a share of the posting's wall time: this process (the
        # poster) and the child (relay and subscriber, until the last event came).
        "poster_cpu_share": round(cpu / (last - first), 2),
        "relay_side_cpu_share": round((after["cpu_s"] - before["cpu_s"]) / (last - first), 2),
        "relay_sweeps": after["sweeps"] - before["sweeps"],
        "relay_side_cpu_ms_per_sweep": round(
            (after["cpu_s"] - before["cpu_s"]) * 1000 / max(1, after["sweeps"] - before["sweeps"]),
            2,
        ),
    }


async def post_steadily(
    poster: TransferPoster, ledger: str, prefix: str, count: int, rate: float
) -> dict[str, Posting]:
    """Post ``count`` single transfers, one every 1/``rate`` s, each call on its own.

    Open loop: a slow call does not push the next one back, as with independent clients.
    """
    posted: dict[str, Posting] = {}

    async def post(n: int, due: float) -> None:
        called = time.monotonic()
        done = await poster.post_one(ledger, transfer(f"{prefix}{n}", n))
        posted[f"transfers/{done.transfer.id}"] = Posting(due, called, time.monotonic())

    calls: list[asyncio.Task[None]] = []
    start = time.monotonic()
    for n in range(count):
        due = start + n / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        calls.append(asyncio.create_task(post(n, due)))
    await asyncio.gather(*calls)
    return posted


async def _expect(
    child: asyncio.subprocess.Process, posted: dict[str, Posting]
) -> tuple[dict[str, float], dict[str, Any]]:
    """When the child's subscriber received each posted transfer, and the child's counters.

    Every posted transfer's event must have come.
    """
    _tell(child, {"expect": list(posted)})
    answer = await _answer(child, "received")
    received: dict[str, float | None] = answer["received"]
    missing = [subject for subject, at in received.items() if at is None]
    if missing or len(received) != len(posted):
        msg = (
            f"{len(missing)} of {len(posted)} transfers' events never reached the subscriber "
            f"within {LAG_RECEIVE_WAIT_S} s (e.g. {missing[:3]})"
        )
        raise LostEventsError(msg)
    return {subject: at for subject, at in received.items() if at is not None}, answer


def _tell(child: asyncio.subprocess.Process, message: dict[str, Any]) -> None:
    assert child.stdin is not None  # noqa: S101 - made with a pipe above
    child.stdin.write(json.dumps(message).encode() + b"\n")


async def _answer(child: asyncio.subprocess.Process, key: str) -> dict[str, Any]:
    assert child.stdout is not None  # noqa: S101 - made with a pipe above
    async with asyncio.timeout(LAG_RECEIVE_WAIT_S + CHILD_WAIT_S):
        line = await child.stdout.readline()
    answer: dict[str, Any] = json.loads(line) if line else {"error": "it exited"}
    if key not in answer:
        msg = f"the relay's process failed: {answer.get('error', answer)}"
        raise RuntimeError(msg)
    return answer


async def _stop(child: asyncio.subprocess.Process) -> None:
    if child.returncode is None:
        with contextlib.suppress(OSError):
            _tell(child, {"stop": True})
        try:
            async with asyncio.timeout(CHILD_WAIT_S):
                await child.wait()
        except TimeoutError:
            child.kill()
            await child.wait()


def _summary(values_ms: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles of sorted values (exact: every sample is kept)."""

    def rank(percent: float) -> float:
        index = max(0, -(-len(values_ms) * percent // 100) - 1)
        return round(values_ms[int(index)], 2)

    return {
        "count": len(values_ms),
        "min": round(values_ms[0], 2),
        "p50": rank(50),
        "p99": rank(99),
        "max": round(values_ms[-1], 2),
        "mean": round(statistics.fmean(values_ms), 2),
    }


# --- the relay's side (a child process) ---------------------------------------------------


async def lag_side(spec: dict[str, Any]) -> int:
    """What ``ledgerd worker`` runs, with a subscriber beside it; answers on stdout."""
    target = Target(**spec["target"])
    hub = InProcessHub()
    try:
        publisher = await open_publisher(target, hub)
        subscriber = await open_subscriber(target, hub)
    except Exception as error:  # noqa: BLE001 - reported to the parent, which fails the phase
        _say({"error": f"{type(error).__name__}: {error}"})
        return 1
    settings = Settings(database_url=spec["database_url"], relay_batch_size=spec["batch"])
    # Nothing commits in this process, so only PostgreSQL's NOTIFY (and the 1 s poll, the
    # safety net) wakes this relay: as in a worker beside the server that posts.
    container = build_container(settings, _UsePublisher(publisher))
    seen: Received = {}
    arrived = Notifier()

    def note(_: Received) -> bool:
        arrived.notify_all()
        return False  # until cancelled

    consuming = asyncio.create_task(receive(subscriber, by_subject, seen, note))
    try:
        # The relay the block runs: the container's one (the block yields its watch).
        relay = await container.get(OutboxRelay)
        async with relaying(container, settings, "bench"):
            await _listening(await container.get(AsyncEngine))
            _say({"ready": True})
            while line := await asyncio.to_thread(sys.stdin.readline):
                request = json.loads(line)
                if "expect" not in request:
                    break
                wanted = set(request["expect"])

                def all_there(wanted: set[str] = wanted) -> bool:
                    return wanted <= seen.keys()

                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LAG_RECEIVE_WAIT_S):
                        await arrived.wait(all_there)
                received = {subject: seen.get(subject) for subject in request["expect"]}
                # This process's CPU time and the relay's sweeps so far, for the parent's
                # figures per sweep.
                _say(
                    {
                        "received": received,
                        "cpu_s": time.process_time(),
                        "sweeps": relay.sweeps.version,
                    }
                )
    finally:
        consuming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consuming
        await subscriber.aclose()
        await container.close()
        await publisher.aclose()
        await hub.aclose()
    return 0


async def _listening(engine: AsyncEngine) -> None:
    """Wait until the relay's listener has run LISTEN, so no commit goes unnoticed."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
    )
    async with asyncio.timeout(LISTEN_WAIT_S):
        while True:
            async with engine.connect() as connection:
                if (await connection.execute(query)).scalar_one():
                    return
            await asyncio.sleep(0.05)  # polling for the listener, with the deadline above


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# --- the run ------------------------------------------------------------------------------


async def measure(
    kind: str, address: str, server: ServerAddress, arguments: argparse.Namespace
) -> dict[str, Any]:
    load = Load.of(kind, arguments)
    result: dict[str, Any] = {"publisher": kind, "address": address or None, "load": asdict(load)}
    database_url = _database_url(arguments.server_url)
    await recreate_database(server, DATABASE)
    settings = Settings(database_url=database_url, relay_batch_size=load.batch_size)
    container = build_container(settings)
    made: list[Target] = []  # what to delete afterwards
    try:
        await MIGRATIONS.upgrade(await container.get(AsyncEngine))
        target = await _connected(new_target(kind, address, "t"), Target(kind, address))
        result["throughput"] = await throughput(container, target, load, made)
        _print_throughput(result["throughput"])
        if kind != "null":
            target = await _connected(new_target(kind, address, "l"), Target(kind, address))
            made.append(target)  # the child process declares it
            result["lag"] = await lag(container, target, database_url, load)
            _print_lag(result["lag"])
        result["status"] = "ok"
    except UnreachableError as error:
        result |= {"status": "unreachable", "reason": str(error)}
        print(f"   not measured: {error}", flush=True)
    except (LostEventsError, RuntimeError) as error:
        result |= {"status": "FAILED", "reason": str(error)}
        print(f"   FAILED: {error}", flush=True)
    finally:
        await container.close()
        for target in made:
            try:
                async with asyncio.timeout(CONNECT_WAIT_S):
                    await remove(target)
            except Exception as error:  # noqa: BLE001 - left behind, said so; the run goes on
                print(f"   could not delete {target.name}: {error!r}", flush=True)
        await drop_database(server, DATABASE)
    return result


def _print_throughput(figures: dict[str, Any]) -> None:
    line = (
        f"   relay: {figures['events']:,} events in {figures['drain_s']:.2f} s = "
        f"{figures['events_per_s']:,} events/s, CPU {figures['cpu_us_per_event']} µs/event"
    )
    if "consume_s" in figures:
        line += (
            f"; subscriber: all {figures['received_distinct']:,} in {figures['consume_s']:.2f} s"
            f" = {figures['consume_events_per_s']:,} events/s"
        )
    print(line + f" (outbox filled in {figures['fill_s']:.1f} s)", flush=True)


def _print_lag(figures: dict[str, Any]) -> None:
    lags = figures["lag_ms"]
    print(
        f"   lag: {lags['count']:,} transfers at {figures['calls_per_s']}/s: "
        f"p50 {lags['p50']:.1f} ms, p99 {lags['p99']:.1f} ms, max {lags['max']:.1f} ms "
        f"(posting call p50 {figures['posting_ms']['p50']:.1f} ms)",
        flush=True,
    )


def _database_url(server_url: str) -> str:
    return server_url.rsplit("/", 1)[0] + f"/{DATABASE}"


@contextlib.contextmanager
def _own_brokers(
    chosen: Sequence[str], scratch: Path
) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """Start tansu and moto's server if chosen: (addresses, reasons a broker is missing)."""
    addresses = {"null": "", "hub": "", "nats": NATS_URL, "redis": REDIS_URL}
    addresses["rabbitmq"] = RABBITMQ_URL
    missing: dict[str, str] = {}
    with contextlib.ExitStack() as running:
        if "kafka" in chosen:
            try:
                addresses["kafka"] = running.enter_context(tansu_broker(scratch / "tansu.log"))
            except TansuUnavailableError as error:
                missing["kafka"] = f"tansu: {error}"
        if "sqs" in chosen:
            # Dummy credentials for moto, and nothing of the developer's AWS set-up: for the
            # emulator's process, this one and the relay's child process alike.
            for name in sqs_emulator.UNSET:
                os.environ.pop(name, None)
            os.environ.update(sqs_emulator.ENVIRONMENT)
            try:
                addresses["sqs"] = running.enter_context(
                    sqs_emulator.moto_server(scratch / "moto.log")
                )
            except (pytest.skip.Exception, pytest.fail.Exception) as error:
                missing["sqs"] = f"moto's server: {error}"
        yield addresses, missing


async def run(arguments: argparse.Namespace) -> int:
    chosen = [kind for kind in PUBLISHERS if not arguments.only or kind in arguments.only]
    server = ServerAddress.from_url(arguments.server_url)
    started, began = datetime.now(UTC), time.monotonic()
    machine_before = machine_info()
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="ledgerd-relay-bench-") as scratch,
        _own_brokers(chosen, Path(scratch)) as (addresses, missing),
    ):
        for kind in chosen:
            print(f"\n== {kind}", flush=True)
            if kind in missing:
                print(f"   not measured: {missing[kind]}", flush=True)
                results.append(
                    {"publisher": kind, "status": "unreachable", "reason": missing[kind]}
                )
                continue
            results.append(await measure(kind, addresses[kind], server, arguments))
    document = {
        "schema": "ledgerd-relay-bench/1",
        "command": " ".join(["python", "bench/relay.py", *sys.argv[1:]]),
        "started_at": started.isoformat(timespec="seconds"),
        "elapsed_s": round(time.monotonic() - began, 1),
        "config": {
            "events": arguments.events,
            "batch_size": arguments.batch_size,
            "rate_per_s": arguments.rate,
            "duration_s": arguments.duration,
            "sqs_events": arguments.sqs_events,
            "sqs_rate_per_s": arguments.sqs_rate,
            "warm_up_transfers": WARM_UP,
            "accounts": ACCOUNTS,
            "fill_transfers_per_unit_of_work": FILL_CHUNK,
        },
        "machine_before": machine_before,
        "machine_after": machine_info(),
        "results": results,
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\n{_table(results)}\n{arguments.output} ({document['elapsed_s']:.0f} s)", flush=True)
    return 1 if any(result["status"] == "FAILED" for result in results) else 0


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        (
            "| publisher | events drained | relay events/s | relay CPU µs/event "
            "| subscriber events/s | lag: transfers/s | p50 ms | p99 ms | max ms | count |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if result["status"] != "ok":
            reason = result["reason"].splitlines()[0][:120]
            lines.append(f"| {result['publisher']} | {result['status']}: {reason} |" + " |" * 8)
            continue
        throughput, lag = result["throughput"], result.get("lag")
        consumed = throughput.get("consume_events_per_s")
        cells = [
            result["publisher"],
            f"{throughput['events']:,}",
            f"{throughput['events_per_s']:,}",
            f"{throughput['cpu_us_per_event']}",
            "-" if consumed is None else f"{consumed:,}",
        ]
        if lag is None:
            cells += ["-"] * 5
        else:
            lags = lag["lag_ms"]
            cells += [
                f"{lag['rate']:g}",
                f"{lags['p50']:.1f}",
                f"{lags['p99']:.1f}",
                f"{lags['max']:.1f}",
                f"{lags['count']:,}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000, help="events the relay drains")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="relay batch")
    parser.add_argument("--rate", type=float, default=200.0, help="transfers/s for the lag")
    parser.add_argument("--duration", type=_seconds, default=10.0, help="of the lag's posting")
    parser.add_argument(
        "--sqs-events", type=int, default=500, help="--events for SQS (moto: see the docstring)"
    )
    parser.add_argument("--sqs-rate", type=float, default=20.0, help="--rate for SQS")
    parser.add_argument("--only", action="append", choices=PUBLISHERS, help="(repeatable)")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="a PostgreSQL server")
    parser.add_argument("--output", type=Path, default=RESULTS / "relay.json")
    parser.add_argument("--lag-side", help=argparse.SUPPRESS)  # the child process's role
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if arguments.lag_side:
        return asyncio.run(lag_side(json.loads(arguments.lag_side)))
    return asyncio.run(run(arguments))


if __name__ == "__main__":
    sys.exit(main())
