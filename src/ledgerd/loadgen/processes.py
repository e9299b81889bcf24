"""Run the clients in one process or several, and merge what they counted.

One Python process drives only so many requests per second (the event loop and the protocol
code are single-threaded), so ``--processes P`` deals the clients out over P worker processes
(``ledgerd.loadgen.worker``, each a fresh interpreter). The parent starts the run only once
every worker has connected all its clients, so the measured window holds load alone, and adds
up their progress reports for the bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import sys
from collections.abc import Callable

from ledgerd.loadgen import worker
from ledgerd.loadgen.config import BenchConfig
from ledgerd.loadgen.runner import ProcessPlan, plan_processes, run_process
from ledgerd.loadgen.stats import RunStats

# Generous: starting interpreters and opening hundreds of connections on a busy machine.
READY_TIMEOUT_S = 120.0

Tick = Callable[[int], None]
"""Told how many transfers (trivial: calls) are done so far, a few times a second."""


class WorkerError(RuntimeError):
    pass


async def run_load(config: BenchConfig, run_id: str, tick: Tick) -> RunStats:
    plans = plan_processes(config, run_id)
    if len(plans) == 1:
        return await _run_here(plans[0], tick)
    return await _run_workers(plans, tick)


async def _run_here(plan: ProcessPlan, tick: Tick) -> RunStats:
    async def open_gate() -> None:
        return

    return await run_process(plan, open_gate, tick)


class _Worker:
    """One worker process and its side of the protocol in ``ledgerd.loadgen.worker``."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.done = 0

    @classmethod
    async def start(cls, plan: ProcessPlan) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            worker.__name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        payload = pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)
        assert process.stdin is not None  # noqa: S101 - asked for above
        process.stdin.write(worker.LENGTH.pack(len(payload)) + payload)
        await process.stdin.drain()
        return cls(process)

    async def _line(self) -> list[bytes]:
        assert self.process.stdout is not None  # noqa: S101 - asked for in start()
        line = await self.process.stdout.readline()
        if not line:
            code = await self.process.wait()
            msg = f"a client process exited ({code}) early; its error is above"
            raise WorkerError(msg)
        return line.split()

    async def ready(self) -> None:
        words = await self._line()
        if words != [worker.READY]:
            msg = f"a client process said {words!r} instead of ready"
            raise WorkerError(msg)

    async def send(self, command: bytes) -> None:
        assert self.process.stdin is not None  # noqa: S101 - asked for in start()
        with contextlib.suppress(ConnectionError):  # a worker that died says so on its stdout
            self.process.stdin.write(command + b"\n")
            await self.process.stdin.drain()

    async def result(self) -> RunStats:
        assert self.process.stdout is not None  # noqa: S101 - asked for in start()
        while True:
            words = await self._line()
            if words[:1] == [worker.DONE]:
                self.done = int(words[1])
            elif words[:1] == [worker.STATS]:
                payload = await self.process.stdout.readexactly(int(words[1]))
                await self.process.wait()
                # Our own child's bytes on a private pipe: trusted like the code we started.
                stats = pickle.loads(payload)  # noqa: S301
                if not isinstance(stats, RunStats):
                    msg = f"a client process sent a {type(stats).__name__}"
                    raise WorkerError(msg)
                return stats
            else:
                msg = f"a client process said {words!r}"
                raise WorkerError(msg)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def _run_workers(plans: list[ProcessPlan], tick: Tick) -> RunStats:
    workers = await asyncio.gather(*(_Worker.start(plan) for plan in plans))
    try:
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await asyncio.gather(*(each.ready() for each in workers))
        except TimeoutError:
            msg = f"the client processes did not connect in {READY_TIMEOUT_S:.0f} s"
            raise WorkerError(msg) from None
        except BaseException:
            await asyncio.gather(*(each.send(worker.ABORT) for each in workers))
            raise
        await asyncio.gather(*(each.send(worker.GO) for each in workers))
        results = asyncio.gather(*(each.result() for each in workers))
        while not results.done():
            tick(sum(each.done for each in workers))
            await asyncio.wait([results], timeout=0.1)
        stats = await results
    finally:
        await asyncio.gather(*(each.stop() for each in workers))
    tick(sum(s.transfers_done for s in stats))
    merged = RunStats()
    for each in stats:
        merged.merge(each)
    return merged
