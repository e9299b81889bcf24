"""The dispatcher: delivers every endpoint's events, in order per endpoint, many endpoints at once.

Each endpoint is served by a task of its own while it has work, one attempt at a time:

- it claims the endpoint (``DeliveryQueue.claim``: no other dispatcher, in this process or
  another, holds it meanwhile), takes the next event the endpoint should receive, signs and
  POSTs it, and records the attempt; the endpoint's place moves only with that record, so an
  event N+1 is never sent before N was acknowledged (2xx) or dead-lettered;
- a failure (an answer that is not 2xx, a timeout, a refused connection) is retried after a
  back-off (``RetryPolicy``: exponential with full jitter) and, after the last attempt allowed,
  dead-lettered, and the endpoint goes on with its next event;
- at most ``concurrency`` attempts are in flight at once, over all endpoints; an attempt takes
  a slot and gives it back, so a slow endpoint holds one slot per attempt, bounded by the
  sender's timeout, and never delays the others while slots are free.

Between rounds the dispatcher sleeps until woken (a commit in this process, PostgreSQL's
NOTIFY, an API change), until the next back-off ends, or at the latest after
``poll_interval_s``. On stop, each attempt in flight finishes and is recorded; an attempt that
is cancelled instead (the shutdown grace ran out) is recorded as interrupted, and its event is
delivered again by the next dispatcher: delivery is at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum, auto
from typing import Literal

from ledgerd.platform.concurrency import Notifier
from ledgerd.platform.throttled_log import ThrottledLog
from ledgerd.webhooks.application.ports import DeliveryClaim, DeliveryQueue, WebhookSender
from ledgerd.webhooks.domain.deliveries import (
    AttemptOutcome,
    DeliveryAttempt,
    Response,
    outcome_of,
)
from ledgerd.webhooks.domain.retries import RetryPolicy
from ledgerd.webhooks.domain.signatures import Delivery, delivery_headers

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DispatchOptions:
    # Attempts in flight at once, over all endpoints (on PostgreSQL each holds a connection).
    concurrency: int = 8
    poll_interval_s: float = 1.0


class _Step(Enum):
    """What one round of an endpoint's task came to."""

    MORE = auto()  # an event done (or skipped): look for the next at once
    WAITING = auto()  # an attempt failed: the back-off decides when it is due again
    IDLE = auto()  # nothing to deliver
    HELD = auto()  # another dispatcher holds it, or it is not due: that one serves it


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WebhookDispatcher:
    def __init__(  # noqa: PLR0913 - its ports, its policy, and the clock and dice tests fix
        self,
        queue: DeliveryQueue,
        sender: WebhookSender,
        policy: RetryPolicy,
        options: DispatchOptions | None = None,
        *,
        wakeups: Notifier | None = None,
        now: Callable[[], datetime] = _utc_now,
        dice: random.Random | None = None,
    ) -> None:
        self._queue, self._sender, self._policy = queue, sender, policy
        self._options = DispatchOptions() if options is None else options
        self.wakeups = Notifier() if wakeups is None else wakeups
        self._now = now
        self._dice = random.Random() if dice is None else dice  # noqa: S311 - jitter, not secrecy
        self._slots = asyncio.Semaphore(self._options.concurrency)
        self._serving: dict[str, asyncio.Task[None]] = {}
        self._failures = ThrottledLog(log)
        self.rounds = Notifier()  # notified after every scheduling round: for observers

    def wake(self) -> None:
        """There may be new work: look now (safe from any callback on the loop)."""
        self.wakeups.notify_all()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then let every attempt in flight finish."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                seen = self.wakeups.version
                next_due = await self._schedule(stop)
                self.rounds.notify_all()
                await self._sleep(seen, stopping, next_due)
        finally:
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopping
            await self._drain()

    async def _schedule(self, stop: asyncio.Event) -> datetime | None:
        """Start a task for every endpoint due that has none; when the next one is due."""
        try:
            schedule = await self._queue.schedule(self._now())
        except Exception as error:  # noqa: BLE001 - the database failed: logged, tried again
            self._failures.log(
                logging.ERROR,
                type(error).__name__,
                "webhook scheduling failed (%s); trying again shortly",
                error,
                error=error,
            )
            return None
        for webhook_id in schedule.due:
            if webhook_id not in self._serving:
                task = asyncio.create_task(
                    self._serve(webhook_id, stop), name=f"webhook-{webhook_id}"
                )
                self._serving[webhook_id] = task
                task.add_done_callback(functools.partial(self._served, webhook_id))
        return schedule.next_due_at

    def _served(self, webhook_id: str, _task: asyncio.Task[None]) -> None:
        self._serving.pop(webhook_id, None)

    async def _sleep(
        self, seen: int, stopping: asyncio.Task[Literal[True]], next_due: datetime | None
    ) -> None:
        timeout = self._options.poll_interval_s
        if next_due is not None:
            timeout = min(timeout, max(0.0, (next_due - self._now()).total_seconds()))
        woken = asyncio.ensure_future(self.wakeups.changed(since=seen))
        try:
            await asyncio.wait(
                {woken, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            woken.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await woken

    async def _drain(self) -> None:
        """Wait for the tasks serving endpoints: each finishes the attempt it is making."""
        tasks = list(self._serving.values())
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:
            # Cut short (the shutdown grace is over): the attempts in flight are cancelled too,
            # and each records itself as interrupted on the way out.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _serve(self, webhook_id: str, stop: asyncio.Event) -> None:
        """Deliver to one endpoint until it has nothing due, one attempt at a time."""
        while not stop.is_set():
            seen = self.wakeups.version
            try:
                async with self._slots:
                    step = await self._round(webhook_id)
            except Exception as error:  # noqa: BLE001 - the database failed: logged, retried
                self._failures.log(
                    logging.ERROR,
                    type(error).__name__,
                    "webhook %s: delivery round failed (%s); trying again shortly",
                    webhook_id,
                    error,
                    error=error,
                )
                return
            if step is _Step.MORE:
                continue
            # Woken while looking (a commit raced the look): look again rather than miss it.
            if step is _Step.IDLE and self.wakeups.version != seen:
                continue
            return

    async def _round(self, webhook_id: str) -> _Step:
        """One round for one endpoint: at most one attempt, recorded."""
        cut_short: list[DeliveryAttempt] = []
        try:
            async with self._queue.claim(webhook_id, self._now()) as claim:
                if claim is None:
                    return _Step.HELD
                delivery = claim.delivery
                if delivery is None:
                    await claim.skip()
                    return _Step.MORE if claim.more else _Step.IDLE
                attempt = await self._attempt(claim, delivery, cut_short)
                await claim.record(attempt, retry_at=self._retry_at(attempt))
                return _Step.WAITING if attempt.outcome is AttemptOutcome.FAILED else _Step.MORE
        except asyncio.CancelledError:
            # The claim is gone with its transaction and the endpoint's place has not moved:
            # the event goes again. The attempt is still written down, in a transaction of its
            # own, so the attempts listed are the requests made.
            for attempt in cut_short:
                with contextlib.suppress(Exception):
                    await self._queue.record_interrupted(attempt)
            raise

    async def _attempt(
        self, claim: DeliveryClaim, delivery: Delivery, cut_short: list[DeliveryAttempt]
    ) -> DeliveryAttempt:
        """POST ``delivery``; the attempt's record (put in ``cut_short`` if cancelled midway)."""
        endpoint = claim.endpoint
        number = claim.failed_attempts + 1
        started = self._now()
        signing = endpoint.secrets.signing_at(started)

        def record(response: Response, outcome: AttemptOutcome) -> DeliveryAttempt:
            return DeliveryAttempt(
                webhook_id=endpoint.id,
                sequence=delivery.sequence,
                event_id=delivery.event_id,
                event_type=delivery.event_type,
                attempt=number,
                replay=delivery.replay,
                started_at=started,
                duration_ms=response.duration_ms,
                status_code=response.status_code,
                error=None if response.acknowledged else response.failure(),
                outcome=outcome,
            )

        if endpoint.secrets.unreadable is not None:
            # Its secrets are sealed under a wrapping key this process lacks: nothing to sign
            # with, so nothing is sent. A failed attempt like any other, which says which key
            # is needed; the other endpoints go on.
            response = Response(None, f"not sent: {endpoint.secrets.unreadable}", 0)
            return self._outcome(endpoint.id, delivery, number, response, record)
        headers = delivery_headers(
            delivery,
            ledger=endpoint.ledger,
            webhook_id=endpoint.id,
            attempt=number,
            secrets=signing,
            timestamp=int(started.timestamp()),
        )
        try:
            response = await self._sender.post(endpoint.url, headers, delivery.body)
        except asyncio.CancelledError:
            elapsed_ms = int((self._now() - started).total_seconds() * 1000)
            cut = Response(None, "interrupted by shutdown", elapsed_ms)
            cut_short.append(record(cut, AttemptOutcome.INTERRUPTED))
            raise
        return self._outcome(endpoint.id, delivery, number, response, record)

    def _outcome(
        self,
        webhook_id: str,
        delivery: Delivery,
        number: int,
        response: Response,
        record: Callable[[Response, AttemptOutcome], DeliveryAttempt],
    ) -> DeliveryAttempt:
        """The attempt's record for ``response``, a failure logged."""
        outcome = outcome_of(response, number, self._policy)
        if outcome is not AttemptOutcome.DELIVERED:
            log.warning(
                "webhook %s: event %d (%s) attempt %d failed: %s%s",
                webhook_id,
                delivery.sequence,
                delivery.event_type,
                number,
                response.failure(),
                "; dead-lettered" if outcome is AttemptOutcome.DEAD_LETTERED else "",
            )
        return record(response, outcome)

    def _retry_at(self, attempt: DeliveryAttempt) -> datetime | None:
        if attempt.outcome is not AttemptOutcome.FAILED:
            return None
        delay = self._policy.delay_s(attempt.attempt, self._dice.uniform)
        return self._now() + timedelta(seconds=delay)
