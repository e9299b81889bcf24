"""The key reload loop: one line per reload, a failing check retried, a stop obeyed."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ledgerd.identity.entrypoints.key_reload import run_key_reload_loop

INTERVAL_S = 0.01


class ScriptedKeys:
    """A reloader whose checks answer as scripted: True (rotated), False, or an error."""

    def __init__(self, answers: list[bool | Exception], stop: asyncio.Event) -> None:
        self._answers, self._stop = answers, stop
        self.version = 1
        self.checks = 0

    async def reload_if_rotated(self) -> bool:
        self.checks += 1
        if not self._answers:
            self._stop.set()
            return False
        answer = self._answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if answer:
            self.version += 1
        return answer


async def test_each_reload_is_logged_once_and_a_failure_is_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    keys = ScriptedKeys([False, True, OSError("database away"), False, True], stop)

    with caplog.at_level(logging.INFO, logger="ledgerd.identity.entrypoints.key_reload"):
        async with asyncio.timeout(10):
            await run_key_reload_loop(keys, stop, interval_s=INTERVAL_S)

    assert keys.checks == 6
    reloads = [r.getMessage() for r in caplog.records if "reloaded" in r.getMessage()]
    assert reloads == [
        "signing keys reloaded: key set version 2",
        "signing keys reloaded: key set version 3",
    ]
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "signing key reload failed (OSError)" in failures[0].getMessage()
    # Only the kind of fault: whatever the error says stays out of the line.
    assert "database away" not in failures[0].getMessage()


async def test_a_set_stop_ends_the_loop_without_a_check() -> None:
    stop = asyncio.Event()
    stop.set()
    keys = ScriptedKeys([True], stop)

    await run_key_reload_loop(keys, stop, interval_s=INTERVAL_S)

    assert keys.checks == 0
