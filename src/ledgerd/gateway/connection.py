"""The HTTP side of a call that must not outlive its client.

ASGI servers (uvicorn among them) do not cancel the application when the client goes away;
they only report ``http.disconnect`` to whoever awaits ``receive()``. The gateway therefore
runs each call beside a watcher on ``receive()`` and cancels the call when the client leaves,
so a posting that waits on a lock stops waiting, and rolls back, instead of committing for
nobody. The request body is read here too, counted as it arrives, so an oversized body is
refused without being held in memory whole.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any, TypeVar

from ledgerd.kernel.errors import validation_error

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
T = TypeVar("T")


class ClientGoneError(Exception):
    """The client disconnected before its answer was complete; nobody is left to tell."""


async def read_body(receive: Receive, limit: int, content_length: str | None) -> bytes:
    """The whole request body, refusing (400) one longer than ``limit`` bytes early."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise validation_error("body", f"is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise validation_error("body", f"is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class ResponseTracker:
    """Wraps ``send`` to know when the last body chunk has gone out.

    Once the response is complete, uvicorn's ``receive()`` also answers ``http.disconnect``;
    the tracker tells that harmless case apart from a client that really left.
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self.complete = False

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        await self._send(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.complete = True


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # a stray body chunk after the body was read: nothing to do with it


async def _cancelled(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to finish, whatever it ends with."""
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


async def while_connected(
    work: Coroutine[Any, Any, T], receive: Receive, tracker: ResponseTracker
) -> T:
    """Run ``work`` until it ends or the client disconnects, whichever comes first.

    On a disconnect before the response is complete, ``work`` is cancelled (and waited for:
    no task is left behind) and :class:`ClientGoneError` is raised. ``receive`` must not be
    awaited by anyone else meanwhile; the body has to be read before.
    """
    job = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((job, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Also when this task itself is cancelled (server shutdown): take both down with it.
        if not job.done() and not watcher.done():
            await _cancelled(job)
        await _cancelled(watcher)
    if job.done() or tracker.complete:
        return await job
    await _cancelled(job)
    raise ClientGoneError
