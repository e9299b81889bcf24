"""The outbox relay: publishes each stream's events in order, as soon as they are committed.

A sweep claims streams one at a time (see ``store``) and publishes up to ``batch_size`` of a
stream's events in one ``publish`` call, then records the new position. What can go wrong:

- the broker is unreachable, slow, or fails in a way nobody foresaw: the stream backs off
  (exponentially, up to ``backoff_max_s``) and is retried, for as long as it takes; nothing
  is dropped and nothing counts against the events;
- the broker refuses one event (``EventRejectedError``): the batch is published again one
  event at a time, so everything before the culprit gets through; the culprit is retried
  with back-off and, refused ``max_rejections`` times in a row, recorded in the dead-letter
  table and stepped over, so one poison event cannot stop its ledger for good.

Between sweeps the relay sleeps until woken: by the in-process notifier (a commit in this
process), by PostgreSQL's NOTIFY (a commit anywhere), or at the latest after
``poll_interval_s`` (a safety net for lost notifications and for back-off deadlines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ledgerd.platform.concurrency import Notifier
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.ports import EventRejectedError, Publisher
from ledgerd.platform.outbox.store import Claim, OutboxStore
from ledgerd.platform.throttled_log import ThrottledLog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RelayOptions:
    batch_size: int = 500
    max_rejections: int = 10
    backoff_base_s: float = 0.2
    backoff_max_s: float = 30.0
    poll_interval_s: float = 1.0


@dataclass
class RelayStats:
    published: int = 0
    failures: int = 0
    dead_lettered: int = 0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class OutboxRelay:
    def __init__(
        self,
        store: OutboxStore,
        publisher: Publisher,
        *,
        wakeups: Notifier | None = None,
        options: RelayOptions | None = None,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self.wakeups = Notifier() if wakeups is None else wakeups
        self._options = RelayOptions() if options is None else options
        self._now = now
        self.stats = RelayStats()
        self.sweeps = Notifier()  # notified after every sweep of ``run``: for observers

    def wake(self) -> None:
        """Something was committed: sweep now (safe to call from any callback on the loop)."""
        self.wakeups.notify_all()

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep whenever woken, until ``stop`` is set; the sweep in progress completes."""
        stopping = asyncio.ensure_future(stop.wait())
        failures = ThrottledLog(log)
        try:
            while not stop.is_set():
                seen = self.wakeups.version
                try:
                    await self.sweep()
                except Exception as error:  # noqa: BLE001 - logged (throttled), then retried
                    # The database itself failed (not the broker: that is handled per stream).
                    # The same failure repeats every sweep of an outage: one line per interval.
                    failures.log(
                        logging.ERROR,
                        type(error).__name__,
                        "outbox sweep failed (%s); trying again shortly",
                        error,
                        error=error,
                    )
                self.sweeps.notify_all()
                woken = asyncio.ensure_future(self.wakeups.changed(since=seen))
                try:
                    await asyncio.wait(
                        {woken, stopping},
                        timeout=self._options.poll_interval_s,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    woken.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await woken
        finally:
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopping

    async def sweep(self) -> int:
        """Publish until no stream that is due has anything left; the events published."""
        published = 0
        while True:
            async with self._store.claim(self._options.batch_size) as claim:
                if claim is None:
                    return published
                published += await self._publish(claim)

    async def _publish(self, claim: Claim) -> int:
        envelopes = claim.envelopes
        upto = claim.cursor.published_sequence
        try:
            await self._publisher.publish(envelopes)
        except EventRejectedError as error:
            log.warning("stream %s: the broker refused an event (%s)", claim.stream, error)
            return await self._one_by_one(claim, envelopes)
        except Exception as error:  # noqa: BLE001 - any other failure: back off, retry
            await self._back_off(claim, upto, error)
            return 0
        await claim.published(envelopes[-1].sequence)
        self.stats.published += len(envelopes)
        return len(envelopes)

    async def _one_by_one(self, claim: Claim, envelopes: list[Envelope]) -> int:
        """Publish from the head one event at a time to get past all but the refused one."""
        upto = claim.cursor.published_sequence
        for envelope in envelopes:
            try:
                await self._publisher.publish([envelope])
            except EventRejectedError as error:
                dead = await claim.rejected(
                    envelope,
                    upto=upto,
                    retry_at=self._retry_at(claim.cursor.failures),
                    error=str(error),
                    max_rejections=self._options.max_rejections,
                )
                if dead:
                    self.stats.dead_lettered += 1
                    log.error(  # noqa: TRY400 - an expected refusal: its traceback says nothing
                        "stream %s: event %s (sequence %d) dead-lettered: %s",
                        claim.stream,
                        envelope.id,
                        envelope.sequence,
                        error,
                    )
                else:
                    self.stats.failures += 1
                break
            except Exception as error:  # noqa: BLE001 - not the event's fault: back off
                await self._back_off(claim, upto, error)
                break
            upto = envelope.sequence
            self.stats.published += 1
        else:
            await claim.published(upto)
        return upto - claim.cursor.published_sequence

    async def _back_off(self, claim: Claim, upto: int, error: Exception) -> None:
        self.stats.failures += 1
        retry_at = self._retry_at(claim.cursor.failures)
        log.warning(
            "stream %s: publishing failed (%s: %s); retrying at %s",
            claim.stream,
            type(error).__name__,
            error,
            retry_at.isoformat(timespec="milliseconds"),
        )
        await claim.failed(upto=upto, retry_at=retry_at, error=f"{type(error).__name__}: {error}")

    def _retry_at(self, failures_before: int) -> datetime:
        delay = min(self._options.backoff_base_s * 2**failures_before, self._options.backoff_max_s)
        return self._now() + timedelta(seconds=delay)
