"""SIGKILL of ``ledgerd serve`` under concurrent load loses nothing and duplicates nothing.

Clients over gRPC and REST post payments, PostTransfers batches (atomic or not) and holds with
their captures, each transfer under an idempotency key of its own, some bound to fail. The
server is killed with SIGKILL at a random moment while calls are in flight, started again on
the same database and ports, and the clients carry on; a few rounds of that. Every answer is
booked per key (tests/faults/outcomes.py); ambiguous keys are sent again with the same body
until settled (tests/faults/traffic.py). Then the ledger must hold every acknowledged key,
no key that definitely failed, no key twice, balances that are the sum of what it holds, and
``ledgerd verify`` must pass.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from ledgerd.main.migrations import MIGRATIONS
from ledgerd.platform.db.engine import create_engine, is_sqlite
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc
from tests.e2e.grpc.support import all_transfers
from tests.faults.outcomes import Book, KeyRecord, KeyState, ledgerd_code
from tests.faults.served import KillableServe, Life
from tests.faults.traffic import (
    ASSET,
    GRPC_CHANNEL_OPTIONS,
    Balances,
    GrpcSender,
    RestSender,
    Sender,
    Traffic,
    Workload,
    balances_of,
    expected_balances,
    mismatch,
    reconcile,
)

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

LEDGERD = Path(sys.executable).parent / "ledgerd"
LEDGER = "kill"
ACCOUNTS = tuple(f"acct-{n}" for n in range(6))
CLIENTS_PER_TRANSPORT = 8
KILLS = 2
# Each round: once the (re)started server has acknowledged this many calls, the kill comes
# after a random further delay of up to KILL_DELAY_S.
ACKNOWLEDGED_BEFORE_KILL = 40
KILL_DELAY_S = 0.5
# Upper bounds, so a hung server or client fails the test instead of stalling it.
PROGRESS_WAIT_S = 60.0
CLIENTS_STOP_WAIT_S = 60.0
CHECK_CALL_TIMEOUT_S = 30.0
VERIFY_WAIT_S = 60.0
LOOKUPS_AT_ONCE = 16
# ledgerd's own answers the workload can get; anything else is a finding.
EXPECTED_CODES = frozenset(
    {
        "ACCOUNT_NOT_FOUND",  # the legs that name no account
        "BATCH_ABORTED",  # the rest of an atomic batch with such a leg
        "OVERLOADED",
        "UNAVAILABLE",
        "DEADLINE_EXCEEDED",
        "OUTCOME_UNKNOWN",
    }
)


@dataclass
class Figures:
    backend: str
    seed: int
    requests: int = 0
    keys: int = 0
    acknowledged: int = 0
    failed: int = 0
    ambiguous: int = 0
    ambiguous_present: int = 0
    # Of those, committed before the ambiguous answer came: the answer was lost, not the work.
    committed_unanswered: int = 0
    reconciled_units: int = 0
    present: int = 0  # transfers the ledger lists
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    phantoms: list[str] = field(default_factory=list)
    in_flight_at_kill: list[int] = field(default_factory=list)
    start_up_s: list[float] = field(default_factory=list)
    recovery_s: list[float] = field(default_factory=list)
    answers: list[tuple[str, int]] = field(default_factory=list)

    def summary(self) -> str:
        def seconds(values: list[float]) -> str:
            return ", ".join(f"{value:.2f}" for value in values) + " s"

        answers = ", ".join(f"{why} {count}" for why, count in self.answers)

        return (
            f"{self.backend} (seed {self.seed}): {KILLS} kills, "
            f"{CLIENTS_PER_TRANSPORT} gRPC + {CLIENTS_PER_TRANSPORT} REST clients\n"
            f"  requests {self.requests}, transfers (keys) {self.keys}: "
            f"acknowledged {self.acknowledged}, definite failures {self.failed}; "
            f"the ledger holds {self.present}\n"
            f"  ambiguous {self.ambiguous}, all resolved: {self.ambiguous_present} written "
            f"({self.committed_unanswered} of them before their answer was lost), "
            f"{self.ambiguous - self.ambiguous_present} not; "
            f"{self.reconciled_units} calls left to the final reconciliation\n"
            f"  lost {len(self.lost)}, duplicated {len(self.duplicated)}, "
            f"written despite a definite failure {len(self.phantoms)}\n"
            f"  calls in flight at each kill: {self.in_flight_at_kill}\n"
            f"  start-up (spawn to listening): {seconds(self.start_up_s)}\n"
            f"  recovery (spawn to first acknowledged call): {seconds(self.recovery_s)}\n"
            f"  answers, one per key per call: {answers}"
        )


async def test_sigkill_under_load_loses_and_duplicates_nothing(
    database_url: str, fault_figures: Callable[[str], None]
) -> None:
    if not is_sqlite(database_url):
        await _migrate(database_url)  # serve migrates only the embedded database itself
    seed = random.SystemRandom().randrange(1_000_000)
    rng = random.Random(seed)  # noqa: S311 - a workload, not a secret
    figures = Figures(backend="sqlite" if is_sqlite(database_url) else "postgresql", seed=seed)
    workload = Workload(LEDGER, ACCOUNTS, Book())
    traffic = Traffic(workload)

    async with KillableServe(database_url, log_level="WARNING") as server:
        life = await server.start()
        async with _checker(server.grpc_port) as stub:
            await _open_books(stub)
        senders = _senders(server)
        try:
            clients = [
                asyncio.create_task(traffic.run_client(sender, rng.randrange(1 << 30)))
                for sender in senders
            ]
            try:
                for round_ in range(1, KILLS + 1):
                    await _acknowledged_since(traffic.book, life)
                    await asyncio.sleep(rng.uniform(0, KILL_DELAY_S))
                    await _kill_as_an_answer_arrives(server, traffic, figures)
                    if round_ == KILLS:
                        # The clients give up on what the last kill left them unsure of.
                        await _stopped(traffic, clients)
                    life = await server.start()
            finally:
                await _stopped(traffic, clients)
            # Sent again with the same bodies and keys until every key is settled.
            figures.reconciled_units = await reconcile(traffic, senders)
        finally:
            for sender in senders:
                await sender.aclose()

        figures.start_up_s = [each.start_up_s for each in server.lives]
        figures.recovery_s = [_recovery(traffic.book, each) for each in server.lives[1:]]
        # Nothing writes any more: the operator's check runs beside the API's.
        verifying = asyncio.create_task(_verifies(database_url))
        try:
            async with _checker(server.grpc_port) as stub:
                await _check_the_ledger(stub, traffic, figures)
            await server.stop()
        except BaseException:
            verifying.cancel()
            await asyncio.wait({verifying})
            raise
        verified = await verifying

    fault_figures(figures.summary())
    # It checked the same ledger the API shows: as many transfers as were listed.
    assert verified.startswith(f"ledger {LEDGER}: {figures.present} transfers,"), verified
    assert all(count > 0 for count in figures.in_flight_at_kill), figures.summary()
    # Killed with calls in flight, some answers must have been lost: else nothing was tested.
    assert figures.ambiguous > 0, figures.summary()


# --- set-up ----------------------------------------------------------------------------------


async def _migrate(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await MIGRATIONS.upgrade(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def _checker(port: int) -> AsyncIterator[LedgerServiceAsyncStub]:
    """A client of the test's own, for setting up and for the checks."""
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", options=GRPC_CHANNEL_OPTIONS
    ) as channel:
        yield ledger_pb2_grpc.LedgerServiceStub(channel)


async def _open_books(stub: LedgerServiceAsyncStub) -> None:
    await stub.CreateLedger(pb.CreateLedgerRequest(id=LEDGER), timeout=CHECK_CALL_TIMEOUT_S)
    for account in ACCOUNTS:
        await stub.CreateAccount(
            pb.CreateAccountRequest(ledger=LEDGER, id=account, asset=ASSET),
            timeout=CHECK_CALL_TIMEOUT_S,
        )


def _senders(server: KillableServe) -> list[Sender]:
    grpc_senders: list[Sender] = [
        GrpcSender(f"g{n}", server.grpc_port) for n in range(CLIENTS_PER_TRANSPORT)
    ]
    rest_senders: list[Sender] = [
        RestSender(f"r{n}", server.base_url) for n in range(CLIENTS_PER_TRANSPORT)
    ]
    return grpc_senders + rest_senders


async def _acknowledged_since(book: Book, life: Life) -> None:
    """Wait until the server's ``life`` has acknowledged enough calls."""
    try:
        async with asyncio.timeout(PROGRESS_WAIT_S):
            await book.until_acknowledged(ACKNOWLEDGED_BEFORE_KILL, after=life.spawned_at)
    except TimeoutError:
        got = len(book.acknowledgements_after(life.spawned_at))
        raise AssertionError(
            f"{got} acknowledgements in {PROGRESS_WAIT_S} s after a (re)start; "
            f"answers so far: {book.codes.most_common()}"
        ) from None


def _recovery(book: Book, life: Life) -> float:
    """From the spawn of ``life`` to the first acknowledgement after it, in seconds.

    The first acknowledgement after the spawn is the new process's: the one before was killed.
    """
    since = book.acknowledgements_after(life.spawned_at)
    return since[0] - life.spawned_at if since else float("nan")


async def _kill_as_an_answer_arrives(
    server: KillableServe, traffic: Traffic, figures: Figures
) -> None:
    """SIGKILL the moment the next acknowledgement is booked, calls in flight or not.

    Then the server has just committed a batch and is still sending its other callers their
    answers: the kill lands where work is committed and its answer lost, the case a client
    can only resolve through its idempotency key (a kill at any other moment mostly finds
    calls waiting, which simply never happened).
    """

    def kill() -> None:
        figures.in_flight_at_kill.append(traffic.in_flight)
        server.kill_now()

    traffic.book.on_next_acknowledgement(kill)
    try:
        async with asyncio.timeout(PROGRESS_WAIT_S):
            await traffic.book.until_acknowledged(1, after=time.monotonic())
    except TimeoutError:
        raise AssertionError(f"no acknowledgement in {PROGRESS_WAIT_S} s") from None
    await server.kill()


async def _stopped(traffic: Traffic, clients: list[asyncio.Task[None]]) -> None:
    traffic.stop.set()
    async with asyncio.timeout(CLIENTS_STOP_WAIT_S):
        await asyncio.gather(*clients)


# --- the checks ------------------------------------------------------------------------------


async def _check_the_ledger(
    stub: LedgerServiceAsyncStub, traffic: Traffic, figures: Figures
) -> None:
    book = traffic.book
    acknowledged = book.in_state(KeyState.ACKNOWLEDGED)
    failed = book.in_state(KeyState.FAILED)
    unresolved = book.in_state(KeyState.UNRESOLVED)
    ambiguous = book.ambiguous()
    figures.requests, figures.keys = book.requests, len(book.keys)
    figures.answers = book.codes.most_common()
    figures.acknowledged, figures.failed = len(acknowledged), len(failed)
    figures.ambiguous = len(ambiguous)
    figures.ambiguous_present = sum(r.state is KeyState.ACKNOWLEDGED for r in ambiguous)
    assert not unresolved, [record.key for record in unresolved]
    unexpected = {code: n for code, n in book.codes.items() if _unexpected(code)}
    assert not unexpected, f"answers the workload should never get: {unexpected}"
    named_twice = {r.key: r.named_other_transfers for r in acknowledged if r.named_other_transfers}
    assert not named_twice, f"acknowledged as different transfers: {named_twice}"

    # Every acknowledged key is there, as the transfer acknowledged; no failed key is.
    found = await _look_up(stub, [*acknowledged, *failed])
    for record in acknowledged:
        transfer = record.transfer
        assert transfer is not None
        got = found[record.key]
        if got is None or got.id != transfer.id:
            figures.lost.append(record.key)
    figures.phantoms = [record.key for record in failed if found[record.key] is not None]

    # Once each, nothing else, each as its key asked.
    async with asyncio.timeout(CHECK_CALL_TIMEOUT_S):
        pages = await all_transfers(stub, pb.ListTransfersRequest(ledger=LEDGER, page_size=1000))
    listed = [transfer for page in pages for transfer in page]
    figures.present = len(listed)
    by_key = Counter(transfer.idempotency_key for transfer in listed)
    figures.duplicated = [key for key, count in by_key.items() if count > 1]
    summary = figures.summary()
    assert not figures.lost, f"{summary}\nlost: {figures.lost}"
    assert not figures.duplicated, f"{summary}\nduplicated: {figures.duplicated}"
    assert not figures.phantoms, f"{summary}\nwritten after a definite failure: {figures.phantoms}"
    strangers = set(by_key) ^ {record.key for record in acknowledged}
    assert not strangers, f"{summary}\nlisted or acknowledged, not both: {strangers}"
    figures.committed_unanswered = _committed_unanswered(ambiguous, listed)
    intents = traffic.workload.intents
    holds = {t.idempotency_key: t.id for t in listed if t.kind == pb.Transfer.HOLD}
    wrong = [problem for t in listed if (problem := mismatch(intents[t.idempotency_key], t, holds))]
    assert not wrong, wrong

    # The balances are the sum of what is there.
    expected = expected_balances(intents, list(by_key))
    for account in ACCOUNTS:
        balance = await stub.GetBalance(
            pb.GetBalanceRequest(ledger=LEDGER, account=account), timeout=CHECK_CALL_TIMEOUT_S
        )
        assert balances_of(balance.balance) == expected.get(account, Balances()), account


def _committed_unanswered(ambiguous: list[KeyRecord], listed: list[pb.Transfer]) -> int:
    """Ambiguous keys whose transfer was created before their first ambiguous answer came.

    Those calls committed and then lost their answer (the kill came between the two): the
    ones a client must not post again under a new key. Creation times are the server's wall
    clock, the answers' times this process's monotonic one: compared through an offset.
    """
    wall_minus_monotonic = time.time() - time.monotonic()
    created = {t.idempotency_key: t.created_at.ToDatetime(tzinfo=UTC) for t in listed}
    count = 0
    for record in ambiguous:
        answered_at = record.first_ambiguous_at
        if record.key in created and answered_at is not None:
            lost_at = datetime.fromtimestamp(answered_at + wall_minus_monotonic, tz=UTC)
            count += created[record.key] < lost_at
    return count


def _unexpected(code: str) -> bool:
    """An answer from ledgerd the workload has no reason to get (client-side ones are fine)."""
    return code != "OK" and code.isupper() and code not in EXPECTED_CODES


async def _look_up(
    stub: LedgerServiceAsyncStub, records: list[KeyRecord]
) -> dict[str, pb.Transfer | None]:
    """GetTransferByKey for each record's key: the transfer, or ``None`` if not found."""
    limit = asyncio.Semaphore(LOOKUPS_AT_ONCE)

    async def look_up(key: str) -> pb.Transfer | None:
        async with limit:
            try:
                return await stub.GetTransferByKey(
                    pb.GetTransferByKeyRequest(ledger=LEDGER, idempotency_key=key),
                    timeout=CHECK_CALL_TIMEOUT_S,
                )
            except grpc.aio.AioRpcError as error:
                failure = error
        assert ledgerd_code(failure) == "TRANSFER_NOT_FOUND", failure
        return None

    keys = [record.key for record in records]
    found = await asyncio.gather(*(look_up(key) for key in keys))
    return dict(zip(keys, found, strict=True))


async def _verifies(database_url: str) -> str:
    """``ledgerd verify LEDGER``, as an operator runs it, exits 0; what it said."""
    process = await asyncio.create_subprocess_exec(
        str(LEDGERD),
        "verify",
        LEDGER,
        env={**os.environ, "LEDGERD_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(VERIFY_WAIT_S):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, output.decode()
    return output.decode()
