"""The in-process hub: the default publisher, and the feed of in-process subscribers.

Every subscription gets every envelope published after it subscribed, in publish order,
through a bounded channel: a subscriber that falls behind by ``capacity`` envelopes makes
``publish`` wait (the relay then slows down and the outbox holds the rest) rather than
growing memory or dropping events. Nothing survives the process; anything that must not be
missed reads the outbox or a durable broker instead.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

from ledgerd.platform.concurrency import Channel, ChannelClosedError
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.ports import Delivery, PublishError

DEFAULT_CAPACITY = 10_000


class InProcessHub:
    def __init__(self, *, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._subscriptions: list[HubSubscription] = []
        self._closed = False

    def subscribe(self) -> HubSubscription:
        if self._closed:
            msg = "the hub is closed"
            raise RuntimeError(msg)
        subscription = HubSubscription(self, Channel(self._capacity))
        self._subscriptions.append(subscription)
        return subscription

    def _forget(self, subscription: HubSubscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if self._closed:
            msg = "the in-process hub is closed"
            raise PublishError(msg)
        for envelope in envelopes:
            for subscription in list(self._subscriptions):
                try:
                    await subscription.channel.send(envelope)
                except ChannelClosedError:
                    self._forget(subscription)  # it unsubscribed meanwhile

    async def aclose(self) -> None:
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.aclose()


class HubSubscription:
    def __init__(self, hub: InProcessHub, channel: Channel[Envelope]) -> None:
        self._hub = hub
        self.channel = channel

    async def deliveries(self) -> AsyncGenerator[Delivery]:
        async for envelope in self.channel:
            yield Delivery(
                envelope=envelope,
                problem=None,
                ack=_nothing_to_do,
                nack=self._again(envelope),
            )

    def _again(self, envelope: Envelope) -> _Redeliver:
        return _Redeliver(self.channel, envelope)

    async def aclose(self) -> None:
        self._hub._forget(self)  # noqa: SLF001 - the hub and its subscriptions are one unit
        self.channel.close()


class _Redeliver:
    """A nack: the envelope goes back to the head of its subscription, delivered next."""

    def __init__(self, channel: Channel[Envelope], envelope: Envelope) -> None:
        self._channel = channel
        self._envelope = envelope

    async def __call__(self) -> None:
        self._channel.push_front([self._envelope])


async def _nothing_to_do() -> None:
    return None
