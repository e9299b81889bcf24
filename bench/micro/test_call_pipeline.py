"""What the request pipeline costs a call: its concerns around a call that does nothing.

A thousand calls per round, on one event loop, through the pipeline ``ledgerd serve`` builds
(access log written to /dev/null at INFO, as ``serve`` writes it to stdout; error
classification; the deadline scope; an admission permit), beside the same calls made bare.
The difference per call is the pipeline's price on every RPC, gRPC or REST.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterator

import pytest
from bench.micro.conftest import Benchmark

from ledgerd.main.call_pipeline import ACCESS_LOG, build_call_pipeline
from ledgerd.platform.api.admission import Admission
from ledgerd.platform.api.pipeline import GRPC, CallInfo, CallPipeline

CALLS = 1_000
METHOD = "/ledgerd.v1.LedgerService/GetBalance"


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    yield running
    running.close()


@pytest.fixture
def access_log_to_devnull() -> Iterator[None]:
    logger = logging.getLogger(ACCESS_LOG)
    with open(os.devnull, "w", encoding="utf-8") as sink:  # noqa: PTH123 - a plain stream
        handler = logging.StreamHandler(sink)
        logger.addHandler(handler)
        level = logger.level
        logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.setLevel(level)
            logger.removeHandler(handler)


async def _answer() -> int:
    return 1


def _call() -> CallInfo:
    return CallInfo(METHOD, GRPC, {}, "bench-request", timeout_s=5.0)


def _rounds(
    loop: asyncio.AbstractEventLoop, one: Callable[[], Awaitable[int]]
) -> Callable[[], int]:
    async def many() -> int:
        total = 0
        for _ in range(CALLS):
            total += await one()
        return total

    return lambda: loop.run_until_complete(many())


def test_calls_without_the_pipeline(benchmark: Benchmark, loop: asyncio.AbstractEventLoop) -> None:
    assert benchmark(_rounds(loop, _answer)) == CALLS


@pytest.mark.usefixtures("access_log_to_devnull")
def test_calls_through_the_pipeline(benchmark: Benchmark, loop: asyncio.AbstractEventLoop) -> None:
    pipeline: CallPipeline = build_call_pipeline(Admission(64, retry_after_s=0.5))
    assert benchmark(_rounds(loop, lambda: pipeline.run(_call(), _answer))) == CALLS
