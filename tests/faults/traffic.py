"""Concurrent clients for the kill test: what they send, how they retry, what they expect.

Each client loops over *units* (one call's worth of work): a single payment, a PostTransfers
batch (atomic or not), or a hold followed by its capture. Some units are bound to fail (a leg
names an account that does not exist), so a test can check that a definite failure wrote
nothing. Every transfer has an idempotency key of its own, and every answer goes into the
``Book`` (tests/faults/outcomes.py).

A client that gets an ambiguous answer sends the same unit again — the same body with the same
keys — pausing a little longer each time, until its keys are settled, the way a careful client
rides out a restart. When the test stops the load, what is still unresolved is left for
``reconcile`` to settle at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import grpc
import httpx
from google.protobuf import json_format

from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc
from tests.faults.outcomes import (
    HTTP_OK,
    Book,
    KeyState,
    Reply,
    grpc_reply,
    item_reply,
    rest_error_reply,
    result_of_json,
    transfer_of_json,
)

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

ASSET = "USD/2"
# A leg naming this account fails with ACCOUNT_NOT_FOUND: the workload's definite failures.
NO_SUCH_ACCOUNT = "nobody"
# Upper bound for one call; the client's own deadline (an ambiguous answer when it passes).
CALL_TIMEOUT_S = 10.0
# Pauses between sends of a unit whose keys are unresolved: 0.1, 0.2, 0.4, then 0.5 s.
FIRST_PAUSE_S = 0.1
LONGEST_PAUSE_S = 0.5
# Reconciliation: units settled at once, and how long it may take in all.
RECONCILING_AT_ONCE = 8
RECONCILE_WAIT_S = 30.0
# Short reconnection back-off (gRPC's default starts at 1 s and grows to 2 minutes), so a
# client notices a restarted server within a fraction of a second. Not min_reconnect_backoff:
# gRPC core takes that one as the time a connection attempt may take (20 s by default), and a
# busy server may need more than a fraction of a second to answer a new connection.
GRPC_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    # A connection of its own per client, as separate client processes would have.
    ("grpc.use_local_subchannel_pool", 1),
)


# --- what the clients send -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Move:
    debit: str
    credit: str
    amount: int


@dataclass(frozen=True, slots=True)
class Intent:
    """What a key asks of the ledger, to compare with what the ledger holds for it."""

    kind: pb.Transfer.Kind.ValueType
    moves: tuple[Move, ...]
    # A capture: the hold's key and its moves, released from the pending balances.
    hold_key: str = ""
    held: tuple[Move, ...] = ()


@dataclass(frozen=True, slots=True)
class Post:
    """PostTransfer (one input, ``batch`` false) or PostTransfers."""

    inputs: tuple[pb.TransferInput, ...]
    batch: bool = False
    atomic: bool = False

    @property
    def keys(self) -> list[str]:
        return [item.idempotency_key for item in self.inputs]


@dataclass(frozen=True, slots=True)
class Capture:
    key: str
    hold: pb.Transfer
    amount: int | None  # None: all of it

    @property
    def keys(self) -> list[str]:
        return [self.key]


Unit = Post | Capture


class Sender(Protocol):
    """One client's connection: sends a unit, answers one ``Reply`` per key, in order."""

    name: str

    async def send(self, ledger: str, unit: Unit) -> list[Reply]: ...

    async def aclose(self) -> None: ...


# --- gRPC ------------------------------------------------------------------------------------


class GrpcSender:
    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=GRPC_CHANNEL_OPTIONS)
        self._stub: LedgerServiceAsyncStub = ledger_pb2_grpc.LedgerServiceStub(self._channel)

    async def send(self, ledger: str, unit: Unit) -> list[Reply]:
        try:
            match unit:
                case Post(inputs=(single,), batch=False):
                    posted = await self._stub.PostTransfer(
                        pb.PostTransferRequest(ledger=ledger, transfer=single),
                        timeout=CALL_TIMEOUT_S,
                    )
                    return [Reply.acknowledged(posted)]
                case Post():
                    answer = await self._stub.PostTransfers(
                        pb.PostTransfersRequest(
                            ledger=ledger, transfers=unit.inputs, atomic=unit.atomic
                        ),
                        timeout=CALL_TIMEOUT_S,
                    )
                    return [item_reply(result) for result in answer.results]
                case Capture():
                    captured = await self._stub.CapturePending(
                        _capture_request(ledger, unit), timeout=CALL_TIMEOUT_S
                    )
                    return [Reply.acknowledged(captured)]
        except grpc.aio.AioRpcError as error:
            return [grpc_reply(error)] * len(unit.keys)

    async def aclose(self) -> None:
        await self._channel.close()


def _capture_request(ledger: str, unit: Capture) -> pb.CapturePendingRequest:
    request = pb.CapturePendingRequest(
        ledger=ledger, transfer=unit.hold.id, idempotency_key=unit.key
    )
    if unit.amount is not None:
        request.amount = unit.amount
    return request


# --- REST ------------------------------------------------------------------------------------


class RestSender:
    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=CALL_TIMEOUT_S,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def send(self, ledger: str, unit: Unit) -> list[Reply]:
        path = f"/v1/ledgers/{ledger}/transfers"
        body: dict[str, object]
        match unit:
            case Post(inputs=(single,), batch=False):
                body = _json(single)
            case Post():
                path += ":batch"
                body = {"transfers": [_json(item) for item in unit.inputs], "atomic": unit.atomic}
            case Capture():
                path += f"/{unit.hold.id}:capture"
                body = _json(_capture_request(ledger, unit))
                del body["ledger"], body["transfer"]  # they are in the path
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError as error:
            return [Reply.no_answer(f"http {type(error).__name__}")] * len(unit.keys)
        if response.status_code != HTTP_OK:
            return [rest_error_reply(response.status_code, response.content)] * len(unit.keys)
        document = response.json()
        if isinstance(unit, Post) and unit.batch:
            return [item_reply(result_of_json(item)) for item in document["results"]]
        return [Reply.acknowledged(transfer_of_json(document))]

    async def aclose(self) -> None:
        await self._client.aclose()


def _json(message: pb.TransferInput | pb.CapturePendingRequest) -> dict[str, object]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


# --- the workload ----------------------------------------------------------------------------


@dataclass
class Workload:
    """Random units over ``accounts``; every key and its intent are registered in ``book``."""

    ledger: str
    accounts: Sequence[str]
    book: Book
    intents: dict[str, Intent] = field(default_factory=dict)

    def _move(self, rng: random.Random, *, bad: bool = False) -> Move:
        debit, credit = rng.sample(list(self.accounts), 2)
        return Move(NO_SUCH_ACCOUNT if bad else debit, credit, rng.randint(1, 10_000))

    def _input(self, key: str, move: Move, *, hold: bool = False) -> pb.TransferInput:
        self.book.open(key)
        kind = pb.Transfer.HOLD if hold else pb.Transfer.POSTING
        self.intents[key] = Intent(kind, (move,))
        item = pb.TransferInput(
            idempotency_key=key,
            legs=[pb.Leg(debit_account=move.debit, credit_account=move.credit, amount=move.amount)],
        )
        if hold:
            item.pending.SetInParent()  # present, timeout 0: held until captured
        return item

    def payment(self, rng: random.Random, key: str) -> Post:
        return Post((self._input(key, self._move(rng, bad=rng.random() < 0.1)),))

    def batch(self, rng: random.Random, key: str) -> Post:
        atomic = rng.random() < 0.3
        size = rng.randint(2, 5)
        # An atomic batch with a bad item fails whole (BATCH_ABORTED): nothing of it written.
        bad = {rng.randrange(size)} if rng.random() < (0.5 if atomic else 0.3) else set()
        inputs = tuple(
            self._input(f"{key}.{n}", self._move(rng, bad=n in bad)) for n in range(size)
        )
        return Post(inputs, batch=True, atomic=atomic)

    def hold(self, rng: random.Random, key: str) -> Post:
        return Post((self._input(key, self._move(rng), hold=True),))

    def capture(self, rng: random.Random, hold_key: str, hold: pb.Transfer) -> Capture:
        key = f"{hold_key}:capture"
        self.book.open(key)
        (held,) = self.intents[hold_key].moves
        amount = None if rng.random() < 0.5 else rng.randint(1, held.amount)
        captured = Move(held.debit, held.credit, held.amount if amount is None else amount)
        self.intents[key] = Intent(pb.Transfer.CAPTURE, (captured,), hold_key, (held,))
        return Capture(key, hold, amount)


# --- the clients -----------------------------------------------------------------------------


@dataclass
class Traffic:
    """The clients' shared state: the book, the units left unresolved, the calls in flight."""

    workload: Workload
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    unresolved: list[Unit] = field(default_factory=list)
    in_flight: int = 0

    @property
    def book(self) -> Book:
        return self.workload.book

    async def send(self, sender: Sender, unit: Unit) -> None:
        self.in_flight += 1
        self.book.requests += 1
        try:
            replies = await sender.send(self.workload.ledger, unit)
        finally:
            self.in_flight -= 1
        assert len(replies) == len(unit.keys), (unit, replies)
        for key, reply in zip(unit.keys, replies, strict=True):
            self.book.record(key, reply)

    def settled(self, unit: Unit) -> bool:
        return all(self.book.state(key) is not KeyState.UNRESOLVED for key in unit.keys)

    async def settle(self, sender: Sender, unit: Unit, *, until_stopped: bool = True) -> None:
        """Send ``unit``, and again while its keys are unresolved (until ``stop``, if told)."""
        await self.send(sender, unit)
        for pause in _pauses():
            if self.settled(unit):
                return
            if until_stopped and self.stop.is_set():
                self.unresolved.append(unit)
                return
            await asyncio.sleep(pause)
            await self.send(sender, unit)

    async def run_client(self, sender: Sender, seed: int) -> None:
        """Send units until ``stop``: payments, batches, holds and their captures."""
        rng = random.Random(seed)  # noqa: S311 - a workload, not a secret
        for number in itertools.count():
            if self.stop.is_set():
                return
            key = f"{sender.name}-{number}"
            choice = rng.random()
            if choice < 0.5:
                await self.settle(sender, self.workload.payment(rng, key))
            elif choice < 0.8:
                await self.settle(sender, self.workload.batch(rng, key))
            else:
                await self._hold_then_capture(sender, rng, key)

    async def _hold_then_capture(self, sender: Sender, rng: random.Random, key: str) -> None:
        await self.settle(sender, self.workload.hold(rng, key))
        hold = self.book.keys[key].transfer
        if hold is not None and not self.stop.is_set():
            await self.settle(sender, self.workload.capture(rng, key, hold))


def _pauses() -> Iterator[float]:
    pause = FIRST_PAUSE_S
    while True:
        yield pause
        pause = min(2 * pause, LONGEST_PAUSE_S)


async def reconcile(traffic: Traffic, senders: Sequence[Sender]) -> int:
    """Send every unit left unresolved again, same bodies and keys, until each key is settled.

    The units are shared out over all the senders, so a unit first sent over REST may be
    settled over gRPC: the key is what matters, not the transport. Returns how many units it
    took on. Holds it settles are not captured: they stay held.
    """
    units, traffic.unresolved = traffic.unresolved, []
    limit = asyncio.Semaphore(RECONCILING_AT_ONCE)

    async def settle(unit: Unit, sender: Sender) -> None:
        async with limit:
            await traffic.settle(sender, unit, until_stopped=False)

    try:
        async with asyncio.timeout(RECONCILE_WAIT_S), asyncio.TaskGroup() as group:
            for number, unit in enumerate(units):
                group.create_task(settle(unit, senders[number % len(senders)]))
    except TimeoutError:
        book = traffic.book
        left = {
            key: [reply.why for reply in book.keys[key].replies][-5:]
            for unit in units
            for key in unit.keys
            if book.state(key) is KeyState.UNRESOLVED
        }
        msg = f"{len(left)} keys still unresolved after {RECONCILE_WAIT_S} s; last answers: {left}"
        raise AssertionError(msg) from None
    return len(units)


# --- what the ledger must hold ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Balances:
    posted_debits: int = 0
    posted_credits: int = 0
    pending_debits: int = 0
    pending_credits: int = 0


def expected_balances(intents: dict[str, Intent], present: Sequence[str]) -> dict[str, Balances]:
    """Each account's balances if exactly the ``present`` keys were written, as intended."""
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for key in present:
        intent = intents[key]
        layer = "pending" if intent.kind == pb.Transfer.HOLD else "posted"
        for move in intent.moves:
            sums[move.debit][f"{layer}_debits"] += move.amount
            sums[move.credit][f"{layer}_credits"] += move.amount
        for move in intent.held:  # a capture releases the whole hold
            sums[move.debit]["pending_debits"] -= move.amount
            sums[move.credit]["pending_credits"] -= move.amount
    return {account: Balances(**figures) for account, figures in sums.items()}


def balances_of(balance: pb.Balance) -> Balances:
    return Balances(
        balance.posted_debits,
        balance.posted_credits,
        balance.pending_debits,
        balance.pending_credits,
    )


def mismatch(intent: Intent, transfer: pb.Transfer, holds: dict[str, str]) -> str | None:
    """How ``transfer`` differs from what its key asked for, or ``None``."""
    moves = tuple(Move(leg.debit_account, leg.credit_account, leg.amount) for leg in transfer.legs)
    if (transfer.kind, moves) != (intent.kind, intent.moves):
        return f"{transfer.idempotency_key}: asked {intent}, holds {transfer}"
    if intent.hold_key and transfer.target_id != holds.get(intent.hold_key):
        return f"{transfer.idempotency_key}: captures {transfer.target_id}, not its hold"
    return None
