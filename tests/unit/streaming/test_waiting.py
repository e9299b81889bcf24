"""Waiting for the next event with a time limit: the streams' heartbeats and credential expiry.

``next_within`` is called for every event a real stream sends, so its time limit is one alarm
per subscription rather than a timer per call (docs/benchmarks.md, issue 17); these tests pin
what it must still do: return each event once, give up after the time asked, not before, and
leave nothing behind when a reader gives up, is cancelled, or the subscription ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ledgerd.streaming.application.hub import StreamHub
from ledgerd.streaming.domain.errors import StreamEndedError
from ledgerd.streaming.domain.events import StreamFilter
from tests.fakes.event_log import FakeEventLog

EVERYTHING = StreamFilter()
LogAndHub = tuple[FakeEventLog, StreamHub]


@pytest.fixture
async def log_and_hub() -> AsyncIterator[LogAndHub]:
    log = FakeEventLog("books")
    hub = StreamHub(log, buffer_events=4, poll_interval_s=30)
    yield log, hub
    await hub.aclose()


async def test_an_event_within_the_time_is_returned_and_none_after_it(
    log_and_hub: LogAndHub,
) -> None:
    log, hub = log_and_hub
    subscription = await hub.subscribe("books", EVERYTHING)
    asyncio.get_running_loop().call_later(0.02, log.commit, hub, "books")
    event = await subscription.next_within(5)
    assert event is not None
    assert event.sequence == 1
    assert await subscription.next_within(0.02) is None
    # Giving up lost nothing and left nothing to deliver twice.
    log.commit(hub, "books", 2)
    got = [await subscription.next_within(5) for _ in range(2)]
    assert [event.sequence for event in got if event is not None] == [2, 3]
    assert await subscription.next_within(0.02) is None


async def test_a_wait_lasts_its_own_time_even_when_an_earlier_alarm_rings_first(
    log_and_hub: LogAndHub,
) -> None:
    log, hub = log_and_hub
    loop = asyncio.get_running_loop()
    subscription = await hub.subscribe("books", EVERYTHING)
    loop.call_later(0.05, log.commit, hub, "books")
    assert await subscription.next_within(0.2) is not None  # the alarm is set for 0.2 s
    began = loop.time()
    # Asked at about 0.05 s for 0.2 s more: the alarm rings at 0.2 s, too early for this wait.
    assert await subscription.next_within(0.2) is None
    assert loop.time() - began >= 0.2


async def test_many_events_waited_for_share_one_alarm(log_and_hub: LogAndHub) -> None:
    log, hub = log_and_hub
    subscription = await hub.subscribe("books", EVERYTHING)
    first = asyncio.create_task(subscription.next_within(30))
    await asyncio.sleep(0)  # parked: the alarm is set
    alarm = subscription._alarm
    assert alarm is not None
    log.commit(hub, "books")
    assert (await first) is not None
    for sequence in range(2, 102):
        reading = asyncio.create_task(subscription.next_within(30))
        await asyncio.sleep(0)
        log.commit(hub, "books")
        event = await reading
        assert event is not None
        assert event.sequence == sequence
    # The same timer, still pending: not a hundred set and cancelled.
    assert subscription._alarm is alarm
    assert not alarm.cancelled()


async def test_ending_cancels_the_alarm(log_and_hub: LogAndHub) -> None:
    _, hub = log_and_hub
    subscription = await hub.subscribe("books", EVERYTHING)
    reading = asyncio.create_task(subscription.next_within(600))
    await asyncio.sleep(0)
    alarm = subscription._alarm
    assert alarm is not None
    await subscription.aclose()
    with pytest.raises(StreamEndedError):
        await reading
    # A pending timer would keep the closed subscription alive for ten minutes.
    assert alarm.cancelled()
    assert subscription._alarm is None


async def test_a_reader_cancelled_while_waiting_takes_no_event_with_it(
    log_and_hub: LogAndHub,
) -> None:
    log, hub = log_and_hub
    subscription = await hub.subscribe("books", EVERYTHING)
    for wait in (subscription.next_within(30), anext(subscription)):
        reading = asyncio.ensure_future(wait)
        await asyncio.sleep(0)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
    log.commit(hub, "books", 2)
    got = [await subscription.next_within(5) for _ in range(2)]
    assert [event.sequence for event in got if event is not None] == [1, 2]


async def test_catching_up_gives_up_after_the_time_too_and_resumes_where_it_was(
    log_and_hub: LogAndHub,
) -> None:
    log, hub = log_and_hub
    log.commit(hub, "books", 3)
    late = await hub.subscribe("books", EVERYTHING, after=1)
    log.hold = asyncio.Event()  # the log's reads hang
    assert await late.next_within(0.05) is None
    log.hold.set()
    log.hold = None
    got = [await late.next_within(5) for _ in range(2)]
    assert [event.sequence for event in got if event is not None] == [2, 3]
    assert await late.next_within(0.02) is None
