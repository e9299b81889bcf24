"""One supervised lifecycle for the background workers of ``serve`` and ``worker``.

The workers (the outbox relay, and whatever the enabled contexts declare: the ledger's expiry
sweep, ...) start in their declared order and drain in the reverse one, so the relay, declared
first, stops last and publishes what the other workers' final work committed. A worker never
ends on its own — each retries its own failures — so one that does is a fault: it is logged
once, names the worker, and stops the process as SIGTERM would (the servers drain first), and
the command exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from dishka import AsyncContainer

from ledgerd.main.bounded_context import BackgroundWorker, BoundedContext, forget
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.relaying import OUTBOX_RELAY
from ledgerd.main.secrets import DATABASE_LEASE, SECRET_REFRESH
from ledgerd.main.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Supervision:
    """What became of the workers: the names of those that ended on their own."""

    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def workers_for(
    command: str, settings: Settings, contexts: Sequence[BoundedContext] = ENABLED_CONTEXTS
) -> tuple[BackgroundWorker, ...]:
    """The workers ``command`` (``serve`` or ``worker``) runs, in start order.

    The secrets' refresh and the database lease first, so they stop last; then the relay.
    """
    declared = (
        SECRET_REFRESH,
        DATABASE_LEASE,
        OUTBOX_RELAY,
        *(worker for context in contexts for worker in context.workers),
    )
    if command == "serve":
        return tuple(worker for worker in declared if worker.in_serve(settings))
    return tuple(worker for worker in declared if worker.in_worker(settings))


def left_to_worker(
    settings: Settings, contexts: Sequence[BoundedContext] = ENABLED_CONTEXTS
) -> list[str]:
    """The contexts' workers that ``ledgerd worker`` runs and ``serve`` does not (by name).

    So that ``serve`` can say what it leaves undone (webhook deliveries on PostgreSQL); the
    relay has its own line.
    """
    in_serve = workers_for("serve", settings, contexts)
    return [
        worker.name
        for worker in workers_for("worker", settings, contexts)
        if worker not in in_serve and worker is not OUTBOX_RELAY
    ]


@contextlib.asynccontextmanager
async def supervised(
    workers: Sequence[BackgroundWorker],
    container: AsyncContainer,
    settings: Settings,
    command: str,
    stop: asyncio.Event,
) -> AsyncIterator[Supervision]:
    """Run ``workers`` while the block does; one ending on its own sets ``stop``.

    Leaving the block drains them, the last started first.
    """
    supervision = Supervision()
    async with contextlib.AsyncExitStack() as stack:
        watched: dict[asyncio.Future[None], str] = {}
        for worker in workers:
            ended = await stack.enter_async_context(worker.run(container, settings, command))
            stack.callback(forget, ended)
            watched[ended] = worker.name
        if watched:
            watcher = asyncio.create_task(_watch(watched, supervision, stop), name="supervisor")
            stack.push_async_callback(_cancelled, watcher)
        yield supervision


async def _watch(
    watched: dict[asyncio.Future[None], str], supervision: Supervision, stop: asyncio.Event
) -> None:
    done, _running = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    for ended in done:
        error = None if ended.cancelled() else ended.exception()
        reason = "it was cancelled" if ended.cancelled() else (repr(error) if error else "no error")
        log.error(
            "background worker '%s' ended on its own (%s): stopping ledgerd",
            watched[ended],
            reason,
            exc_info=error,
        )
        supervision.failed.append(watched[ended])
    stop.set()


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
