"""Subscribers asking the log for the same page at once share one read (``SharedReads``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ledgerd.streaming.application.hub import StreamHub
from ledgerd.streaming.application.shared_reads import SharedReads
from ledgerd.streaming.application.subscription import Subscription
from ledgerd.streaming.domain.events import StreamEvent, StreamFilter
from tests.fakes.event_log import FakeEventLog

WAIT_S = 10.0  # an upper bound on a wait, not a measurement


class _FailingOnceLog(FakeEventLog):
    """The fake log, whose next read fails once (the database away)."""

    def __init__(self, *ledgers: str) -> None:
        super().__init__(*ledgers)
        self.fail_next = False

    async def read(self, ledger: str, after: int, limit: int) -> Sequence[StreamEvent]:
        page = await super().read(ledger, after, limit)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the database went away")
        return page


async def test_the_same_page_asked_at_once_is_one_read_and_a_later_ask_reads_again() -> None:
    log = FakeEventLog("books")
    for _ in range(5):
        log.append("books")
    shared = SharedReads(log, most_at_once=10)
    log.hold = asyncio.Event()
    same = [asyncio.ensure_future(shared.read("books", 0, 3)) for _ in range(50)]
    other = asyncio.ensure_future(shared.read("books", 3, 3))
    await asyncio.sleep(0)
    same[0].cancel()  # one client leaves: the others still get the page
    log.hold.set()
    pages = await asyncio.gather(*same[1:])
    assert {tuple(event.sequence for event in page) for page in pages} == {(1, 2, 3)}
    assert [event.sequence for event in await other] == [4, 5]
    assert log.reads == 2  # one per page asked

    log.append("books")
    assert [event.sequence for event in await shared.read("books", 3, 3)] == [4, 5, 6]
    assert log.reads == 3  # nothing kept: what the log has now


async def test_a_failed_read_fails_everyone_waiting_and_the_next_ask_reads_again() -> None:
    log = _FailingOnceLog("books")
    log.append("books")
    shared = SharedReads(log, most_at_once=10)
    log.hold = asyncio.Event()
    log.fail_next = True
    waiting = [asyncio.ensure_future(shared.read("books", 0, 10)) for _ in range(3)]
    await asyncio.sleep(0)
    log.hold.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    assert [event.sequence for event in await shared.read("books", 0, 10)] == [1]
    assert log.reads == 2


async def test_reads_of_different_pages_run_a_few_at_a_time_and_the_rest_wait() -> None:
    log = FakeEventLog("books")
    for _ in range(10):
        log.append("books")
    shared = SharedReads(log, most_at_once=2)
    log.hold = asyncio.Event()
    asking = [asyncio.ensure_future(shared.read("books", after, 1)) for after in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert log.reads == 2  # two at the log, three waiting their turn (not the pool's)
    log.hold.set()
    async with asyncio.timeout(WAIT_S):
        pages = await asyncio.gather(*asking)
    assert [[event.sequence for event in page] for page in pages] == [[1], [2], [3], [4], [5]]
    assert log.reads == 5


async def test_subscribers_catching_up_together_read_each_page_once() -> None:
    """A restart's resumptions: 200 subscribers from one position, 100 events behind."""
    log = FakeEventLog("books")
    hub = StreamHub(
        log, catch_up_log=SharedReads(log, most_at_once=4), buffer_events=10, poll_interval_s=30
    )
    for _ in range(100):
        log.append("books")
    subscriptions = [await hub.subscribe("books", StreamFilter(), after=0) for _ in range(200)]

    async def read_all(subscription: Subscription) -> list[int]:
        return [(await anext(subscription)).sequence for _ in range(100)]

    async with asyncio.timeout(WAIT_S):
        received = await asyncio.gather(*(read_all(each) for each in subscriptions))
    assert all(sequences == list(range(1, 101)) for sequences in received)
    # Ten pages of ten and the last, empty one that finds them live: not 200 times as many.
    assert log.reads <= 12, log.reads
    for subscription in subscriptions:
        await subscription.aclose()
    await hub.aclose()
