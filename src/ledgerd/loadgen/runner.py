"""The clients of one process: each a task with its own connection, posting back to back.

Every client waits at a start gate until all of them (in every process) are connected, so the
measured window holds load only. A client posts, waits for the answer, and posts again (a
closed loop): the offered load is ``clients * batch`` transfers in flight, and latency is each
request's own round trip measured with ``time.perf_counter``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ledgerd.loadgen.config import GRPC, BenchConfig, RestClient
from ledgerd.loadgen.credentials import BearerHeader, TokenKeeper
from ledgerd.loadgen.grpc_transport import GrpcTransport
from ledgerd.loadgen.provision import CREATE_CONCURRENCY
from ledgerd.loadgen.rest_transport import RestTransport
from ledgerd.loadgen.stats import RunStats
from ledgerd.loadgen.transport import TransferOrder, Transport
from ledgerd.loadgen.workload import movement_source

# How often a process publishes its progress count.
TICK_S = 0.1


def make_transport(
    config: BenchConfig, authorization: BearerHeader | None = None, *, admin: bool = False
) -> Transport:
    """One client's connection; ``admin``: the one for set-up and checks (httpx, pooled).

    ``authorization``: the process's token, renewed in place (None: calls carry no token).
    """
    if config.transport == GRPC:
        return GrpcTransport(config.target.address, config.request_timeout_s, authorization)
    if admin:
        return RestTransport(
            config.target,
            config.request_timeout_s,
            connections=CREATE_CONCURRENCY,
            authorization=authorization,
        )
    lean = config.rest_client is RestClient.LEAN
    return RestTransport(
        config.target, config.request_timeout_s, lean=lean, authorization=authorization
    )


@dataclass(frozen=True, slots=True)
class ProcessPlan:
    """What one process runs: its share of the clients (and of the transfers, if counted)."""

    config: BenchConfig
    run_id: str
    process: int
    clients: tuple[int, ...]
    """Global client numbers: they make the idempotency keys and random seeds unique."""
    quotas: tuple[int, ...] | None
    """Transfers per client when the run is bounded by count, else None."""


def plan_processes(config: BenchConfig, run_id: str) -> list[ProcessPlan]:
    """Deal the clients (and transfers) out round-robin, so shares differ by at most one."""
    quotas = None
    if config.transfers is not None:
        share, extra = divmod(config.transfers, config.clients)
        quotas = [share + (client < extra) for client in range(config.clients)]
    plans = []
    for process in range(config.processes):
        clients = tuple(range(process, config.clients, config.processes))
        plans.append(
            ProcessPlan(
                config=config,
                run_id=run_id,
                process=process,
                clients=clients,
                quotas=None if quotas is None else tuple(quotas[c] for c in clients),
            )
        )
    return plans


StartGate = Callable[[], Awaitable[None]]
"""Awaited once every client of the process is connected; returns when the run starts."""


async def run_process(
    plan: ProcessPlan, gate: StartGate, publish: Callable[[int], None] | None = None
) -> RunStats:
    """Connect this process's clients, pass the gate, run them all, return what they counted."""
    config = plan.config
    stats = RunStats()
    # This process's own token, got now and renewed before it expires, for all its clients.
    keeper = TokenKeeper(config.auth, config.request_timeout_s)
    await keeper.start()
    transports = [make_transport(config, keeper.header) for _ in plan.clients]
    try:
        await asyncio.gather(*(transport.connect() for transport in transports))
        await gate()
        started = time.perf_counter()
        end = None if config.duration_s is None else started + config.duration_s
        ticker = asyncio.create_task(_publish_progress(stats, publish)) if publish else None
        try:
            await asyncio.gather(
                *(
                    _run_client(plan, _Lane(number, transport, quota), stats, end)
                    for number, transport, quota in zip(
                        plan.clients,
                        transports,
                        plan.quotas or [None] * len(plan.clients),
                        strict=True,
                    )
                )
            )
        finally:
            stats.elapsed_s = time.perf_counter() - started
            if ticker is not None:
                ticker.cancel()
        if publish is not None:
            publish(stats.transfers_done)
    finally:
        await asyncio.gather(*(transport.close() for transport in transports))
        await keeper.stop()
    stats.token_renewals = keeper.renewals
    return stats


async def _publish_progress(stats: RunStats, publish: Callable[[int], None]) -> None:
    while True:
        publish(stats.transfers_done)
        await asyncio.sleep(TICK_S)


@dataclass(frozen=True, slots=True)
class _Lane:
    """One client: its number, its connection, its share of the transfers (if counted)."""

    number: int
    transport: Transport
    quota: int | None


async def _run_client(plan: ProcessPlan, lane: _Lane, stats: RunStats, end: float | None) -> None:
    config = plan.config
    number, transport, quota = lane.number, lane.transport, lane.quota
    if config.trivial:
        await _ping_loop(transport, stats, end, quota)
        return
    seed = number if config.seed is None else config.seed * 1_000_003 + number
    source = movement_source(
        config.workload, config.accounts, seed=seed, zipf_exponent=config.zipf_exponent
    )
    prefix = f"{plan.run_id}.{number}."
    sent = 0
    ledger, batch, clock = config.ledger, config.batch, time.perf_counter
    while True:
        if quota is not None:
            size = min(batch, quota - sent)
            if size <= 0:
                return
        elif end is not None and clock() >= end:
            return
        else:
            size = batch
        orders = [TransferOrder(f"{prefix}{sent + i}", source.next()) for i in range(size)]
        sent += size
        began = clock()
        outcome = await transport.post(ledger, orders)
        stats.latency.record(clock() - began)
        _count(stats, outcome.ids, outcome.errors, outcome.replayed)


def _count(stats: RunStats, ids: Sequence[str], errors: Sequence[str], replayed: int) -> None:
    stats.requests += 1
    stats.transfers_ok += len(ids)
    stats.acked_ids.extend(ids)
    stats.replayed += replayed
    if errors:
        stats.failed_requests += not ids
        stats.transfers_failed += len(errors)
        stats.errors.update(errors)


async def _ping_loop(
    transport: Transport, stats: RunStats, end: float | None, quota: int | None
) -> None:
    clock = time.perf_counter
    done = 0
    while (quota is None or done < quota) and (end is None or clock() < end):
        began = clock()
        error = await transport.ping()
        stats.latency.record(clock() - began)
        done += 1
        _count(stats, (), () if error is None else (error,), 0)
        if error is None:
            stats.transfers_ok += 1
