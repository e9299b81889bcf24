"""A repeated failure is logged once per interval with a count; its traceback at DEBUG."""

from __future__ import annotations

import logging

import pytest

from ledgerd.platform.throttled_log import ThrottledLog

LOGGER = "ledgerd.test.throttled"


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, bool]]:
    return [(r.levelno, r.getMessage(), r.exc_info is not None) for r in caplog.records]


def test_one_line_per_kind_per_interval_then_the_count_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    clock = Ticks()
    log = ThrottledLog(logging.getLogger(LOGGER), interval_s=10, clock=clock)
    error = ConnectionError("gone")
    logged = [
        log.log(logging.WARNING, "db", "database down: %s", n, error=error) for n in range(1000)
    ]
    clock.now += 10
    log.log(logging.WARNING, "db", "database down: %s", "again", error=error)
    assert logged == [True] + [False] * 999
    assert _lines(caplog) == [
        (logging.WARNING, "database down: 0", False),
        (logging.DEBUG, "the first db in full:", True),
        (logging.WARNING, "database down: again (and 999 more like it in the last 10 s)", False),
        (logging.DEBUG, "the first db in full:", True),
    ]


def test_kinds_are_counted_apart(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    log = ThrottledLog(logging.getLogger(LOGGER), interval_s=10, clock=Ticks())
    for _ in range(3):
        log.log(logging.ERROR, "KeyError", "unexpected KeyError")
        log.log(logging.ERROR, "ValueError", "unexpected ValueError")
    assert [message for _, message, _ in _lines(caplog)] == [
        "unexpected KeyError",
        "unexpected ValueError",
    ]


def test_an_unexpected_failure_can_keep_its_traceback_on_its_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    log = ThrottledLog(logging.getLogger(LOGGER), clock=Ticks())
    log.log(logging.ERROR, "bug", "a bug", error=RuntimeError("x"), traceback_level=logging.ERROR)
    assert _lines(caplog) == [(logging.ERROR, "a bug", True)]


def test_memory_stays_bounded_by_forgetting_the_stalest_kinds() -> None:
    log = ThrottledLog(logging.getLogger(LOGGER), clock=Ticks())
    for n in range(5000):
        kind = f"kind-{n}"
        log.log(logging.INFO, kind, "x")
    assert len(log._kinds) == 1000
