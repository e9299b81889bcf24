"""A gRPC client channel that is remade when the client certificate it presents is renewed.

grpc's channel credentials are fixed when a channel is made, so a short-lived client
certificate would expire under a long-lived channel. This channel stands for the current one:
when :class:`ReloadingCertificates` loads a renewed pair it opens a new channel with it (a new
connection, a new handshake) for the calls that start from then on, and closes the old one once
the calls in flight on it have had ``grace_s`` to finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import grpc

from ledgerd.platform.tls.certificate_files import ServerCertificates
from ledgerd.platform.tls.reloading import ReloadingCertificates

OpenChannel = Callable[[ServerCertificates], grpc.aio.Channel]
# Long enough for a forwarded call in flight to finish its work; shorter than any sane
# certificate lifetime, so old channels do not pile up.
DEFAULT_GRACE_S = 30.0


class RenewingChannel(grpc.aio.Channel):
    """The channel ``open_channel`` makes from ``certificates``, remade when they are reloaded.

    Made and renewed on the event loop (reloads are checked there), so no lock is needed.
    """

    def __init__(
        self,
        certificates: ReloadingCertificates,
        open_channel: OpenChannel,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> None:
        self._open, self._grace_s = open_channel, grace_s
        self._current = open_channel(certificates.current)
        self._retiring: set[asyncio.Task[None]] = set()
        certificates.on_reload(self._renew)

    def _renew(self, certificates: ServerCertificates) -> None:
        old, self._current = self._current, self._open(certificates)
        retiring = asyncio.get_running_loop().create_task(old.close(self._grace_s))
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)

    async def close(self, grace: float | None = None) -> None:
        await self._current.close(grace)
        await asyncio.gather(*self._retiring, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close(None)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:  # noqa: FBT001, FBT002 - grpc's signature
        return self._current.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._current.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._current.channel_ready()

    # The multicallables are made per call by their users (the gateway's invoker does), so each
    # call goes over the channel current when it starts.
    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - grpc's types, passed through
        return self._current.unary_unary(*args, **kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - grpc's types, passed through
        return self._current.unary_stream(*args, **kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - grpc's types, passed through
        return self._current.stream_unary(*args, **kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - grpc's types, passed through
        return self._current.stream_stream(*args, **kwargs)
