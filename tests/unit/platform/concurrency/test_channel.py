"""Channels: order, backpressure, close, fairness, and no loss or duplication under cancellation."""

import asyncio
import random
from collections import Counter

import pytest

from ledgerd.platform.concurrency import Channel, ChannelClosedError
from tests.unit.platform.concurrency.support import settle

# A collecting window no test should ever sit through: reaching it means a bug.
FOREVER = 60.0


async def test_capacity_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Channel[int](0)


async def test_items_come_out_in_the_order_they_went_in() -> None:
    channel = Channel[int](5)
    for item in range(5):
        await channel.send(item)
    assert len(channel) == 5
    assert channel.capacity == 5
    assert [await channel.receive() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert len(channel) == 0


async def test_try_send_refuses_when_full_and_send_waits_for_room() -> None:
    channel = Channel[str](2)
    assert channel.try_send("a")
    assert channel.try_send("b")
    assert not channel.try_send("c")
    sending = asyncio.create_task(channel.send("c"))
    await settle()
    assert not sending.done()  # backpressure: no room, so the sender waits
    assert await channel.receive() == "a"
    await sending
    assert channel.drain() == ["b", "c"]


async def test_receive_waits_for_an_item() -> None:
    channel = Channel[int](1)
    receiving = asyncio.create_task(channel.receive())
    await settle()
    assert not receiving.done()
    await channel.send(7)
    assert await receiving == 7


async def test_a_closed_channel_refuses_sends() -> None:
    channel = Channel[int](1)
    channel.close()
    channel.close()  # idempotent
    assert channel.closed
    with pytest.raises(ChannelClosedError):
        await channel.send(1)
    with pytest.raises(ChannelClosedError):
        channel.try_send(1)


async def test_closing_fails_waiting_senders_and_keeps_what_was_accepted() -> None:
    channel = Channel[int](1)
    await channel.send(1)
    sending = asyncio.create_task(channel.send(2))
    await settle()
    channel.close()
    with pytest.raises(ChannelClosedError):
        await sending
    assert await channel.receive() == 1  # accepted before the close: still delivered
    with pytest.raises(ChannelClosedError):
        await channel.receive()


async def test_a_sender_granted_room_before_close_but_running_after_it_is_refused() -> None:
    channel = Channel[int](1)
    await channel.send(1)
    sending = asyncio.create_task(channel.send(2))
    await settle()
    assert await channel.receive() == 1  # grants the room to the waiting sender...
    channel.close()  # ...which has not run yet: close() is the cut-off
    with pytest.raises(ChannelClosedError):
        await sending
    assert channel.drain() == []


async def test_receivers_drain_after_close_then_the_iteration_ends() -> None:
    channel = Channel[int](3)
    for item in (1, 2, 3):
        await channel.send(item)
    channel.close()
    assert [item async for item in channel] == [1, 2, 3]
    with pytest.raises(ChannelClosedError):
        await channel.receive()


async def test_closing_ends_every_waiting_receiver() -> None:
    channel = Channel[int](1)
    receivers = [asyncio.create_task(channel.receive()) for _ in range(3)]
    await settle()
    channel.close()
    for receiver in receivers:
        with pytest.raises(ChannelClosedError):
            await receiver


async def test_waiting_receivers_are_served_first_come_first_served() -> None:
    channel = Channel[int](3)
    receivers = []
    for _ in range(3):
        receivers.append(asyncio.create_task(channel.receive()))
        await settle()  # queue them in a known order
    for item in (10, 20, 30):
        await channel.send(item)
    assert [await receiver for receiver in receivers] == [10, 20, 30]


async def test_waiting_senders_are_served_first_come_first_served() -> None:
    channel = Channel[str](1)
    await channel.send("first")
    senders = []
    for item in ("a", "b", "c"):
        senders.append(asyncio.create_task(channel.send(item)))
        await settle()
    received = [await channel.receive() for _ in range(4)]
    assert received == ["first", "a", "b", "c"]
    await asyncio.gather(*senders)


async def test_a_newcomer_does_not_overtake_a_waiting_sender() -> None:
    channel = Channel[str](1)
    await channel.send("first")
    waiting = asyncio.create_task(channel.send("waited"))
    await settle()
    assert await channel.receive() == "first"
    # The room just freed belongs to the waiting sender, even though it has not run yet.
    assert not channel.try_send("newcomer")
    await waiting
    assert channel.drain() == ["waited"]


async def test_a_cancelled_waiting_sender_did_not_send() -> None:
    channel = Channel[str](1)
    await channel.send("kept")
    sending = asyncio.create_task(channel.send("never"))
    await settle()
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert await channel.receive() == "kept"
    assert channel.try_send("next")  # the cancelled sender left no claim on the room
    assert channel.drain() == ["next"]


async def test_a_sender_cancelled_after_being_granted_room_passes_the_room_on() -> None:
    channel = Channel[str](1)
    await channel.send("x")
    first = asyncio.create_task(channel.send("first"))
    await settle()
    second = asyncio.create_task(channel.send("second"))
    await settle()
    assert await channel.receive() == "x"  # the room goes to `first`, which has not run yet
    first.cancel()  # cancelled between being woken and running
    with pytest.raises(asyncio.CancelledError):
        await first
    await second  # got the room `first` gave back
    assert channel.drain() == ["second"]  # `first` was not sent, `second` was, once


async def test_a_receiver_cancelled_after_being_granted_an_item_passes_it_on() -> None:
    channel = Channel[str](2)
    first = asyncio.create_task(channel.receive())
    await settle()
    second = asyncio.create_task(channel.receive())
    await settle()
    await channel.send("item")  # granted to `first`, which has not run yet
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "item"
    assert len(channel) == 0


async def test_a_cancelled_waiting_receiver_took_nothing() -> None:
    channel = Channel[int](1)
    receiving = asyncio.create_task(channel.receive())
    await settle()
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    await channel.send(5)
    assert await channel.receive() == 5


async def test_drain_leaves_the_item_promised_to_a_waiting_receiver() -> None:
    channel = Channel[int](3)
    receiving = asyncio.create_task(channel.receive())
    await settle()
    for item in (1, 2, 3):
        channel.try_send(item)
    # One item is promised to the receiver already waiting. Promises are counts, not
    # positions: items always leave in the order they came, so drain() takes the oldest two.
    assert channel.drain() == [1, 2]
    assert await receiving == 3


async def test_push_front_returns_items_ahead_of_the_rest_even_when_closed_or_full() -> None:
    channel = Channel[int](2)
    await channel.send(3)
    await channel.send(4)
    channel.close()
    channel.push_front([1, 2])
    assert len(channel) == 4  # over capacity for a while, never dropped
    assert [item async for item in channel] == [1, 2, 3, 4]


async def test_push_front_past_capacity_holds_senders_back_until_below_it() -> None:
    channel = Channel[int](1)
    channel.push_front([1, 2])
    assert not channel.try_send(3)
    assert await channel.receive() == 1
    assert not channel.try_send(3)  # still at capacity
    assert await channel.receive() == 2
    assert channel.try_send(3)


# --- receive_batch -----------------------------------------------------------------------------


async def test_a_batch_waits_for_its_first_item_without_limit() -> None:
    channel = Channel[int](4)
    batch = asyncio.create_task(channel.receive_batch(4, 0.0))
    await settle()
    assert not batch.done()
    await channel.send(1)
    assert await batch == [1]


async def test_a_batch_takes_what_is_there_up_to_max_items_without_waiting() -> None:
    channel = Channel[int](8)
    for item in range(6):
        await channel.send(item)
    async with asyncio.timeout(5):  # fails, rather than hangs, if it waited for the window
        assert await channel.receive_batch(4, FOREVER) == [0, 1, 2, 3]
    assert len(channel) == 2


async def test_a_batch_collects_items_arriving_within_its_window() -> None:
    channel = Channel[int](8)
    batch = asyncio.create_task(channel.receive_batch(3, FOREVER))
    await channel.send(1)
    await settle()
    await channel.send(2)
    await settle()
    assert not batch.done()  # 2 of 3, window still open
    await channel.send(3)
    async with asyncio.timeout(5):
        assert await batch == [1, 2, 3]


async def test_a_batch_returns_what_it_has_when_its_window_ends() -> None:
    channel = Channel[int](8)
    await channel.send(1)
    await channel.send(2)
    assert await channel.receive_batch(10, 0.02) == [1, 2]


async def test_a_batch_stops_at_close_and_the_next_one_ends() -> None:
    channel = Channel[int](8)
    batch = asyncio.create_task(channel.receive_batch(10, FOREVER))
    await channel.send(1)
    await settle()
    channel.close()
    async with asyncio.timeout(5):
        assert await batch == [1]
    with pytest.raises(ChannelClosedError):
        await channel.receive_batch(10, FOREVER)


async def test_a_batch_stops_when_the_buffer_is_full_of_its_own_items() -> None:
    channel = Channel[int](3)
    batch = asyncio.create_task(channel.receive_batch(10, FOREVER))
    for item in (1, 2, 3):
        await channel.send(item)
    async with asyncio.timeout(5):
        assert await batch == [1, 2, 3]  # nothing more could arrive before it is taken


async def test_a_batch_cancelled_while_collecting_loses_nothing() -> None:
    channel = Channel[str](8)
    batch = asyncio.create_task(channel.receive_batch(10, FOREVER))
    await channel.send("a")
    await settle()
    await channel.send("b")
    await settle()
    assert not batch.done()
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    assert len(channel) == 2
    assert [await channel.receive(), await channel.receive()] == ["a", "b"]


async def test_a_batch_cancelled_after_the_close_leaves_its_items_to_the_others() -> None:
    channel = Channel[str](4)
    batch = asyncio.create_task(channel.receive_batch(5, FOREVER))
    await channel.send("a")
    await settle()  # the batch holds "a" and waits for more
    other = asyncio.create_task(channel.receive())
    await settle()  # waits: the only item is the batch's
    channel.close()
    batch.cancel()  # the batch gives "a" up after the close
    with pytest.raises(asyncio.CancelledError):
        await batch
    # "a" reaches the other receiver instead of being stranded behind an end of channel.
    assert await other == "a"
    with pytest.raises(ChannelClosedError):
        await channel.receive()


async def test_max_items_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="max_items"):
        await Channel[int](1).receive_batch(0, 1.0)


# --- random concurrency with cancellation ------------------------------------------------------


class Traffic:
    """Senders and receivers of one channel, recording what was accepted and what was taken."""

    def __init__(self, channel: Channel[tuple[int, int]], rng: random.Random) -> None:
        self.channel = channel
        self.rng = rng
        self.accepted: list[tuple[int, int]] = []
        self.taken: list[tuple[int, int]] = []  # in the order items left the channel

    async def sender(self, number: int) -> None:
        for sequence in range(self.rng.randint(1, 12)):
            await self.channel.send((number, sequence))
            self.accepted.append((number, sequence))  # same step as the send's return

    async def receiver(self, *, batches: bool) -> None:
        while True:
            try:
                if batches:
                    batch = await self.channel.receive_batch(self.rng.randint(1, 5), 0.001)
                    self.taken.extend(batch)
                else:
                    self.taken.append(await self.channel.receive())
            except ChannelClosedError:
                return


@pytest.mark.parametrize("seed", range(40))
async def test_no_item_is_lost_or_duplicated_under_random_cancellation(seed: int) -> None:
    """Senders, receivers and batch receivers come and go and are cancelled at random.

    Whatever happens: every item whose send returned is received exactly once (during the run
    or by draining after close), nothing else is received, and each sender's items leave the
    channel in the order that sender sent them.
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not a secret
    channel = Channel[tuple[int, int]](rng.randint(1, 4))
    traffic = Traffic(channel, rng)
    tasks: list[asyncio.Task[None]] = []
    for number in range(25):
        choice = rng.random()
        if choice < 0.4:
            tasks.append(asyncio.create_task(traffic.sender(number)))
        elif choice < 0.7:
            batches = rng.random() < 0.5
            tasks.append(asyncio.create_task(traffic.receiver(batches=batches)))
        elif tasks:
            rng.choice(tasks).cancel()
        await settle(rng.randint(0, 3))
    survivors = [asyncio.create_task(traffic.receiver(batches=False)) for _ in range(2)]
    await settle(50)
    channel.close()
    await asyncio.gather(*tasks, *survivors, return_exceptions=True)
    delivered = traffic.taken + channel.drain()

    assert Counter(delivered) == Counter(traffic.accepted)
    assert len(set(delivered)) == len(delivered)
    for number in {number for number, _ in delivered}:
        sequences = [sequence for n, sequence in delivered if n == number]
        assert sequences == sorted(sequences)
