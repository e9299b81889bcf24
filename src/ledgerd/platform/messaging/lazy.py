"""A publisher that connects when first needed, and again after its connection failed.

A server must start, and keep taking transfers, while its broker is down: the events wait in
the outbox. So the broker connection is not made at start-up but on the relay's first
publish, and a publish that cannot connect fails like any other outage
(``BrokerUnavailableError``: the relay backs off and tries again).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.ports import BrokerUnavailableError, Publisher, PublishError

log = logging.getLogger(__name__)


class ConnectingPublisher:
    def __init__(self, name: str, connect: Callable[[], Awaitable[Publisher]]) -> None:
        self.name = name
        self._connect = connect
        self._publisher: Publisher | None = None

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if self._publisher is None:
            try:
                self._publisher = await self._connect()
            except PublishError:
                raise
            except Exception as error:
                msg = f"cannot connect to {self.name}: {type(error).__name__}: {error}"
                raise BrokerUnavailableError(msg) from error
            log.info("connected to %s", self.name)
        await self._publisher.publish(envelopes)

    async def aclose(self) -> None:
        if self._publisher is not None:
            await self._publisher.aclose()
            self._publisher = None
