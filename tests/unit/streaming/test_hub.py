"""The hub: catch-up then live with no gap and no duplicate, filters, backpressure, ending."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Mapping

import pytest

from ledgerd.kernel.errors import LedgerdError
from ledgerd.streaming.application.hub import StreamHub, UnknownLedgerError
from ledgerd.streaming.application.subscription import Subscription
from ledgerd.streaming.domain.errors import PositionAheadError, StreamEndedError
from ledgerd.streaming.domain.events import StreamFilter
from tests.fakes.event_log import FakeEventLog

EVERYTHING = StreamFilter()
LogAndHub = tuple[FakeEventLog, StreamHub]


async def take(subscription: Subscription, count: int) -> list[int]:
    async with asyncio.timeout(5):
        return [(await anext(subscription)).sequence for _ in range(count)]


def is_live(subscription: Subscription) -> bool:
    """Whether the feed offers it events (read through a call: mypy narrows attributes)."""
    return subscription.live


async def nothing_more(subscription: Subscription) -> bool:
    return await subscription.next_within(0.05) is None


@pytest.fixture
async def log_and_hub() -> AsyncIterator[LogAndHub]:
    log = FakeEventLog("books", "other")
    hub = StreamHub(log, buffer_events=4, poll_interval_s=30)
    yield log, hub
    await hub.aclose()


async def test_from_now_gets_only_what_is_committed_after(log_and_hub: LogAndHub) -> None:
    log, hub = log_and_hub
    log.commit(hub, "books", 3)
    subscription = await hub.subscribe("books", EVERYTHING)
    assert is_live(subscription)
    log.commit(hub, "books", 2)
    assert await take(subscription, 2) == [4, 5]
    assert await nothing_more(subscription)


async def test_from_a_position_catches_up_then_goes_live_without_gap_or_duplicate(
    log_and_hub: LogAndHub,
) -> None:
    log, hub = log_and_hub
    watcher = await hub.subscribe("books", EVERYTHING)  # keeps the feed at the log's end
    log.commit(hub, "books", 10)
    assert await take(watcher, 10) == list(range(1, 11))
    late = await hub.subscribe("books", EVERYTHING, after=3)
    assert not is_live(late)
    # Commits land while the late subscriber reads its first page from the log.
    log.hold = asyncio.Event()
    first = asyncio.create_task(anext(late))
    await asyncio.sleep(0.01)
    log.commit(hub, "books", 3)
    log.hold.set()
    log.hold = None
    assert (await first).sequence == 4
    assert await take(late, 9) == list(range(5, 14))
    assert is_live(late)
    log.commit(hub, "books", 2)
    assert await take(late, 2) == [14, 15]
    assert await nothing_more(late)


async def test_from_zero_reads_the_whole_log_and_each_event_once(log_and_hub: LogAndHub) -> None:
    log, hub = log_and_hub
    log.commit(hub, "books", 9)
    subscription = await hub.subscribe("books", EVERYTHING, after=0)
    got: list[int] = []
    for round_ in range(3):
        got += await take(subscription, 3)
        log.commit(hub, "books", 2)  # live events arrive while it is still catching up
        del round_
    got += await take(subscription, 15 - len(got))
    assert got == list(range(1, 16))
    assert await nothing_more(subscription)


async def test_filters_by_type_and_by_account(log_and_hub: LogAndHub) -> None:
    log, hub = log_and_hub
    alice = await hub.subscribe("books", StreamFilter(accounts=frozenset({"alice"})))
    holds = await hub.subscribe(
        "books", StreamFilter(types=frozenset({"ledgerd.v1.PendingCreated"}))
    )
    log.commit(hub, "books", accounts=("alice", "bank"))  # 1
    log.commit(hub, "books", accounts=("bob", "bank"))  # 2
    log.commit(hub, "books", type_="ledgerd.v1.PendingCreated", accounts=("bob", "bank"))  # 3
    log.commit(hub, "books", type_="ledgerd.v1.PendingCreated", accounts=("alice",))  # 4
    assert await take(alice, 2) == [1, 4]
    assert await take(holds, 2) == [3, 4]
    assert await nothing_more(alice)
    # The same filter while catching up from the log.
    late = await hub.subscribe("books", StreamFilter(accounts=frozenset({"bob"})), after=0)
    assert await take(late, 2) == [2, 3]


async def test_other_ledgers_events_are_not_delivered(log_and_hub: LogAndHub) -> None:
    log, hub = log_and_hub
    subscription = await hub.subscribe("books", EVERYTHING)
    log.commit(hub, "other", 3)
    log.commit(hub, "books")
    assert [(await anext(subscription)).ledger] == ["books"]
    assert await nothing_more(subscription)


async def test_a_reader_a_buffer_behind_is_moved_to_the_log_and_misses_nothing(
    log_and_hub: LogAndHub,
) -> None:
    log, hub = log_and_hub
    slow = await hub.subscribe("books", EVERYTHING)
    fast = await hub.subscribe("books", EVERYTHING)
    log.commit(hub, "books", 30)
    # The fast one reads everything live; the feed never waited for the slow one.
    assert await take(fast, 30) == list(range(1, 31))
    assert slow.buffered <= 4  # its bound (buffer_events=4), not 30
    assert slow.lagged == 1
    assert not is_live(slow)
    assert await take(slow, 30) == list(range(1, 31))  # the rest from the log, in order
    assert is_live(slow)  # caught up: live again
    log.commit(hub, "books", 1)
    assert await take(slow, 1) == [31]


async def test_ending_hands_out_what_is_buffered_then_the_resume_position(
    log_and_hub: LogAndHub,
) -> None:
    log, hub = log_and_hub
    subscription = await hub.subscribe("books", EVERYTHING)
    log.commit(hub, "books", 2)
    await asyncio.sleep(0.01)
    await hub.aclose()
    assert await take(subscription, 2) == [1, 2]
    with pytest.raises(StreamEndedError) as ended:
        await anext(subscription)
    assert ended.value.position == 2
    assert "shutting down" in ended.value.reason


async def test_refusals(log_and_hub: LogAndHub) -> None:
    log, hub = log_and_hub
    log.commit(hub, "books", 2)
    with pytest.raises(UnknownLedgerError):
        await hub.subscribe("nowhere", EVERYTHING)
    with pytest.raises(PositionAheadError) as ahead:
        await hub.subscribe("books", EVERYTHING, after=5)
    assert ahead.value.details == {"ledger": "books", "position": "5", "last_sequence": "2"}
    with pytest.raises(LedgerdError, match="after"):
        await hub.subscribe("books", EVERYTHING, after=-1)
    assert hub.feed("books") is None  # nothing left behind by the refusals
    assert hub.subscriptions == 0


async def test_a_watched_ledger_is_known_without_reading_the_log(log_and_hub: LogAndHub) -> None:
    log, hub = log_and_hub
    assert not await hub.ledger_exists("nowhere")
    assert await hub.ledger_exists("books")  # unwatched: the log says so
    subscription = await hub.subscribe("books", EVERYTHING)
    log.hold = asyncio.Event()  # from here a read of the log would wait for ever
    async with asyncio.timeout(1):
        assert await hub.ledger_exists("books")
    log.hold.set()
    await subscription.aclose()


class _LastSequenceCountingLog(FakeEventLog):
    """The fake log, counting how often it is asked for a ledger's last sequence."""

    def __init__(self, *ledgers: str) -> None:
        super().__init__(*ledgers)
        self.last_sequence_reads = 0

    async def last_sequence(self, ledger: str) -> int | None:
        self.last_sequence_reads += 1
        return await super().last_sequence(ledger)


async def test_streams_opening_at_once_share_one_read_of_whether_the_ledger_exists() -> None:
    log = _LastSequenceCountingLog("books")
    hub = StreamHub(log, buffer_events=4, poll_interval_s=30)
    log.hold = asyncio.Event()
    asking = [asyncio.ensure_future(hub.ledger_exists(ledger)) for ledger in ["books"] * 50]
    asking.append(asyncio.ensure_future(hub.ledger_exists("nowhere")))
    await asyncio.sleep(0)
    asking[0].cancel()  # one client leaves: the others still get their answer
    log.hold.set()
    answers = await asyncio.gather(*asking[1:])
    assert answers == [True] * 49 + [False]
    assert log.last_sequence_reads == 2  # one per ledger
    assert await hub.ledger_exists("books")  # a later question reads again (nobody watches)
    assert log.last_sequence_reads == 3
    await hub.aclose()


async def test_the_feed_lives_while_it_has_subscribers(log_and_hub: LogAndHub) -> None:
    log, hub = log_and_hub
    one = await hub.subscribe("books", EVERYTHING)
    two = await hub.subscribe("books", StreamFilter(accounts=frozenset({"alice"})))
    assert hub.subscriptions == 2
    await one.aclose()
    assert hub.feed("books") is not None
    await two.aclose()
    assert hub.feed("books") is None
    log.commit(hub, "books")  # nobody is woken, nothing breaks
    three = await hub.subscribe("books", EVERYTHING, after=0)
    assert await take(three, 1) == [1]


async def test_concurrent_first_subscribers_share_one_feed(log_and_hub: LogAndHub) -> None:
    log, hub = log_and_hub
    subscriptions = await asyncio.gather(*(hub.subscribe("books", EVERYTHING) for _ in range(5)))
    feed = hub.feed("books")
    assert feed is not None
    assert len(feed.members) == 5
    log.commit(hub, "books")
    for subscription in subscriptions:
        assert await take(subscription, 1) == [1]


async def test_the_poll_finds_events_nobody_announced() -> None:
    log = FakeEventLog("books")
    hub = StreamHub(log, poll_interval_s=0.05)
    try:
        subscription = await hub.subscribe("books", EVERYTHING)
        log.append("books")  # committed elsewhere, the notification lost
        assert await take(subscription, 1) == [1]
    finally:
        await hub.aclose()


async def test_the_safety_net_asks_once_for_every_watched_ledger_and_reads_only_the_behind() -> (
    None
):
    ledgers = [f"ledger-{number}" for number in range(50)]
    log = FakeEventLog(*ledgers)
    hub = StreamHub(log, poll_interval_s=0.05)
    try:
        subscriptions = [await hub.subscribe(ledger, EVERYTHING) for ledger in ledgers]
        await asyncio.sleep(0.3)  # a few intervals, nothing committed
        # Asked about all 50 together, once an interval; no feed read its log (a poll per
        # feed would have been 50 reads an interval).
        assert log.last_sequences_asked >= 1
        assert log.reads == 0
        log.append("ledger-7")  # committed elsewhere, the notification lost
        assert await take(subscriptions[7], 1) == [1]
        assert log.reads == 1  # that ledger's feed read; no other did
    finally:
        await hub.aclose()


class _UnreachableSafetyNetLog(FakeEventLog):
    """The fake log, whose last sequences cannot be read (the database away)."""

    async def last_sequences(self, ledgers: Collection[str]) -> Mapping[str, int]:
        del ledgers
        self.last_sequences_asked += 1
        raise ConnectionError("the database went away")


async def test_a_failing_safety_net_is_one_warning_while_it_lasts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = _UnreachableSafetyNetLog("books")
    hub = StreamHub(log, poll_interval_s=0.02)
    try:
        with caplog.at_level(logging.WARNING, logger="ledgerd.streaming.application.hub"):
            subscription = await hub.subscribe("books", EVERYTHING)
            while log.last_sequences_asked < 5:  # noqa: ASYNC110 - polls, no event to wait on
                await asyncio.sleep(0.02)
        warned = "stream safety net cannot read the watched ledgers' last events"
        assert [record.getMessage() for record in caplog.records] == [
            f"{warned} (the database went away)"
        ]
        log.commit(hub, "books")  # a notification still delivers
        assert await take(subscription, 1) == [1]
    finally:
        await hub.aclose()


async def test_a_first_subscriber_cancelled_while_opening_the_feed_does_not_fail_the_others() -> (
    None
):
    log = FakeEventLog("books")
    hub = StreamHub(log, poll_interval_s=30)
    log.hold = asyncio.Event()
    first = asyncio.create_task(hub.subscribe("books", EVERYTHING))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(hub.subscribe("books", EVERYTHING))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0.01)
    log.hold.set()
    log.hold = None
    subscription = await second
    assert first.cancelled()
    log.commit(hub, "books")
    assert await take(subscription, 1) == [1]
    await hub.aclose()
