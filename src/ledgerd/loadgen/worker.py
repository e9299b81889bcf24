"""A client process for ``ledgerd bench --processes P`` (``python -m ledgerd.loadgen.worker``).

It imports the load generator and nothing else, so it starts in a fraction of the time a
``multiprocessing`` child would (those re-import the parent's main module: all of
``ledgerd``). It talks to the parent over its stdin and a private copy of its stdout:

    parent -> worker   the ProcessPlan, pickled, after an 8-byte length
    worker -> parent   "ready" once every client is connected
    parent -> worker   "go" (or "abort")
    worker -> parent   "done N" a few times a second, then "stats LENGTH" and the pickled RunStats

Anything else the worker prints goes to stderr, never into that channel.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
import sys
from collections.abc import Callable
from typing import BinaryIO

from ledgerd.loadgen.runner import ProcessPlan, run_process
from ledgerd.loadgen.transport import ApiError

LENGTH = struct.Struct(">Q")
READY = b"ready"
GO = b"go"
ABORT = b"abort"
DONE = b"done"
STATS = b"stats"


class RunAbortedError(RuntimeError):
    pass


def main() -> int:
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not reach the parent
    commands = sys.stdin.buffer
    (length,) = LENGTH.unpack(commands.read(LENGTH.size))
    # Our own parent's bytes on a private pipe: trusted like the code that spawned us.
    plan = pickle.loads(commands.read(length))  # noqa: S301
    if not isinstance(plan, ProcessPlan):
        msg = f"expected a ProcessPlan, got {type(plan).__name__}"
        raise TypeError(msg)
    try:
        stats = asyncio.run(
            run_process(plan, lambda: _gate(channel, commands), _publisher(channel))
        )
    except (ApiError, RunAbortedError) as error:
        print(f"ledgerd bench client process {plan.process}: {error}", file=sys.stderr)  # noqa: T201 - the parent says to look here
        return 1
    payload = pickle.dumps(stats, protocol=pickle.HIGHEST_PROTOCOL)
    channel.write(STATS + b" %d\n" % len(payload) + payload)
    return 0


async def _gate(channel: BinaryIO, commands: BinaryIO) -> None:
    channel.write(READY + b"\n")
    answer = (await asyncio.to_thread(commands.readline)).strip()
    if answer != GO:
        msg = "the parent called the run off"
        raise RunAbortedError(msg)


def _publisher(channel: BinaryIO) -> Callable[[int], None]:
    def publish(done: int) -> None:
        channel.write(DONE + b" %d\n" % done)

    return publish


if __name__ == "__main__":
    sys.exit(main())
