"""The call pipeline and its concerns, on their own: order, refusals, request ids, outcomes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from ledgerd.kernel.deadline import remaining
from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.platform.api.admission import Admission
from ledgerd.platform.api.call_concerns import (
    AccessLog,
    AdmissionControl,
    ErrorClassification,
    deadline,
)
from ledgerd.platform.api.pipeline import (
    GRPC,
    REQUEST_ID_KEY,
    CallAnsweredError,
    CallInfo,
    CallPipeline,
    Concern,
    UnexpectedError,
    request_id_of,
)
from ledgerd.platform.throttled_log import ThrottledLog

T = TypeVar("T")
LOGGER = "ledgerd.test.pipeline"
METHOD = "/test.Library/GetShelf"
GENERATED = r"[0-9a-f]{32}"


def _call(request_id: str = "r-1", timeout_s: float | None = None) -> CallInfo:
    return CallInfo(
        method=METHOD,
        transport=GRPC,
        metadata={REQUEST_ID_KEY: request_id},
        request_id=request_id,
        timeout_s=timeout_s,
    )


class Recorder:
    """A concern that notes when it is entered and left, under ``name``."""

    def __init__(self, name: str, journal: list[str]) -> None:
        self._name = name
        self._journal = journal

    async def __call__(self, _call: CallInfo, proceed: Callable[[], Awaitable[T]]) -> T:
        self._journal.append(f"{self._name} in")
        try:
            return await proceed()
        finally:
            self._journal.append(f"{self._name} out")


async def _answer(journal: list[str]) -> str:
    journal.append("call")
    return "answer"


async def test_concerns_run_in_their_order_each_around_all_that_follow() -> None:
    journal: list[str] = []
    pipeline = CallPipeline([Recorder("first", journal), Recorder("second", journal)])

    assert await pipeline.run(_call(), lambda: _answer(journal)) == "answer"
    assert journal == ["first in", "second in", "call", "second out", "first out"]


async def test_a_concern_that_refuses_stops_the_call_and_all_after_it() -> None:
    journal: list[str] = []

    async def refuse(call: CallInfo, _proceed: Callable[[], Awaitable[T]]) -> T:
        raise LedgerdError(ErrorCode.OVERLOADED, f"not now, {call.request_id}")

    pipeline = CallPipeline([Recorder("first", journal), refuse, Recorder("after", journal)])
    with pytest.raises(LedgerdError) as refused:
        await pipeline.run(_call(), lambda: _answer(journal))
    assert refused.value.message == "not now, r-1"
    assert journal == ["first in", "first out"]


@pytest.mark.parametrize(
    ("supplied", "kept"),
    [
        ("abc-123", True),
        ("a:b.c_d-E9", True),
        ("y" * 128, True),
        ("y" * 129, False),
        ("", False),
        ("has space", False),
        ("slash/y", False),
        ("semi;colon", False),
        ('quote"', False),
        ("line\nbreak", False),
    ],
)
def test_a_request_id_is_kept_only_when_well_formed(supplied: str, kept: bool) -> None:
    chosen = request_id_of({REQUEST_ID_KEY: supplied})
    if kept:
        assert chosen == supplied
    else:
        assert chosen != supplied
        assert request_id_of({REQUEST_ID_KEY: chosen}) == chosen  # the made-up one is kept


def test_a_request_id_is_made_up_when_absent() -> None:
    made_up = {request_id_of({}) for _ in range(3)}
    assert len(made_up) == 3


# --- error classification -----------------------------------------------------------------


def _classifying(caplog: pytest.LogCaptureFixture) -> CallPipeline:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return CallPipeline([ErrorClassification(ThrottledLog(logging.getLogger(LOGGER)))])


async def _fails(error: Exception) -> str:
    raise error


@pytest.mark.parametrize(
    "failure",
    [
        LedgerdError(LedgerErrorCode.LEDGER_NOT_FOUND, "no such ledger"),
        # The application answered through its transport itself (a gRPC abort).
        CallAnsweredError("NOT_FOUND", RuntimeError("the transport's own")),
    ],
)
async def test_a_domain_error_or_an_own_answer_passes_as_it_is(
    caplog: pytest.LogCaptureFixture, failure: Exception
) -> None:
    with pytest.raises(type(failure)) as raised:
        await _classifying(caplog).run(_call(), lambda: _fails(failure))
    assert raised.value is failure
    assert caplog.records == []


async def test_a_bug_is_logged_once_per_kind_and_answered_with_the_request_id_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline = _classifying(caplog)
    failures = []
    for number in range(3):
        with pytest.raises(UnexpectedError) as raised:
            await pipeline.run(_call(f"bug-{number}"), lambda: _fails(KeyError("secret")))
        failures.append(raised.value)

    assert [failure.message for failure in failures] == [
        f"internal error; request id bug-{number}" for number in range(3)
    ]
    assert all(isinstance(failure.__cause__, KeyError) for failure in failures)
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert [record.getMessage() for record in errors] == ["unexpected error (request bug-0)"]
    assert errors[0].exc_info is not None  # with its traceback, on the server only


# --- the access log -------------------------------------------------------------------------


async def _outcome_logged(
    caplog: pytest.LogCaptureFixture, application: Callable[[], Awaitable[str]]
) -> str:
    """The access-log line of one failing call through access log and error classification."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    logger = logging.getLogger(LOGGER)
    pipeline = CallPipeline([AccessLog(logger), ErrorClassification(ThrottledLog(logger))])
    ended: BaseException | None = None
    try:
        await pipeline.run(_call("logged-1"), application)
    except BaseException as error:  # noqa: BLE001 - every way of failing is a case here
        ended = error
    assert ended is not None
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    return line


async def _cancelled() -> str:
    raise asyncio.CancelledError


@pytest.mark.parametrize(
    ("application", "outcome"),
    [
        (
            lambda: _fails(LedgerdError(LedgerErrorCode.LEDGER_NOT_FOUND, "none")),
            "LEDGER_NOT_FOUND",
        ),
        (lambda: _fails(KeyError("bug")), "INTERNAL"),
        (lambda: _fails(CallAnsweredError("NOT_FOUND", KeyError())), "NOT_FOUND"),
        (_cancelled, "CANCELLED"),
    ],
)
async def test_the_access_log_tells_how_each_call_ended(
    caplog: pytest.LogCaptureFixture, application: Callable[[], Awaitable[str]], outcome: str
) -> None:
    line = await _outcome_logged(caplog, application)
    transport, method, logged, elapsed, request_id = line.split(" ")
    assert (transport, method, logged, request_id) == (GRPC, METHOD, outcome, "request_id=logged-1")
    assert elapsed.endswith("ms")


async def test_a_successful_call_is_logged_ok(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    pipeline = CallPipeline([AccessLog(logging.getLogger(LOGGER))])
    answered = _call("fine-1")
    assert await pipeline.run(answered, lambda: _answer([])) == "answer"
    own_status = _call("own-1")
    own_status.answered = "NOT_FOUND"  # as the gRPC edge notes a status the servicer set
    await pipeline.run(own_status, lambda: _answer([]))
    lines = [record.getMessage().split(" ")[2::2] for record in caplog.records]
    assert lines == [["OK", "request_id=fine-1"], ["NOT_FOUND", "request_id=own-1"]]


# --- deadline and admission -----------------------------------------------------------------


async def test_the_call_runs_under_the_clients_deadline() -> None:
    pipeline = CallPipeline([deadline])

    async def left() -> float | None:
        return remaining()

    seconds = await pipeline.run(_call(timeout_s=30.0), left)
    assert seconds is not None
    assert 0 < seconds <= 30.0
    assert await pipeline.run(_call(timeout_s=None), left) is None

    with pytest.raises(LedgerdError) as passed:
        await pipeline.run(_call(timeout_s=0.0), lambda: asyncio.Event().wait())
    assert passed.value.code is ErrorCode.DEADLINE_EXCEEDED


async def test_admission_holds_a_permit_per_call_but_not_for_exempt_services() -> None:
    admission = Admission(1, retry_after_s=0.5)
    concern: Concern = AdmissionControl(admission, exempt_services={"grpc.health.v1.Health"})
    pipeline = CallPipeline([concern])
    seen: list[int] = []

    async def count() -> None:
        seen.append(admission.in_flight)

    await pipeline.run(_call(), count)
    probe = _call()
    probe.method = "/grpc.health.v1.Health/Check"
    with admission.admit():  # the server is full
        await pipeline.run(probe, count)
        with pytest.raises(LedgerdError) as refused:
            await pipeline.run(_call(), count)
    assert refused.value.code is ErrorCode.OVERLOADED
    assert seen == [1, 1]  # its own permit; the probe took none (the 1 is the test's)
    assert admission.in_flight == 0
