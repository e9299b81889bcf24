"""The concerns of the call pipeline: access log, error classification, deadline, admission.

Each is transport-neutral: it reads the :class:`CallInfo` and acts around the rest of the
pipeline. Their order is decided where the pipeline is built (the composition root).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from ledgerd.kernel.deadline import deadline_scope
from ledgerd.kernel.errors import LedgerdError
from ledgerd.platform.api.admission import Admission
from ledgerd.platform.api.pipeline import CallAnsweredError, CallInfo, UnexpectedError
from ledgerd.platform.throttled_log import ThrottledLog

T = TypeVar("T")

INTERNAL = "INTERNAL"
CANCELLED = "CANCELLED"
OK = "OK"


def outcome_of(call: CallInfo, error: BaseException | None) -> str:
    """How a call ended, in a word: OK, its error code, INTERNAL, CANCELLED, or its own status."""
    if error is None:
        return OK if call.answered is None else call.answered
    if isinstance(error, LedgerdError):
        return str(error.code)
    if isinstance(error, CallAnsweredError):
        return error.status
    if isinstance(error, asyncio.CancelledError):
        # The client went away or its deadline passed before the call ended.
        return CANCELLED
    return INTERNAL


class AccessLog:
    """One line per call once it ends: transport, method, outcome, duration and request id.

    ``grpc /ledgerd.v1.LedgerService/GetLedger LEDGER_NOT_FOUND 0.8ms request_id=…``, and
    `` sub=<subject>`` after it once authentication knows the caller (never their token).
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger

    async def __call__(self, call: CallInfo, proceed: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await proceed()
        except BaseException as failure:
            error = failure
            raise
        finally:
            self._log.info(
                "%s %s %s %.1fms request_id=%s%s",
                call.transport,
                call.method,
                outcome_of(call, error),
                (time.perf_counter() - started) * 1000,
                call.request_id,
                "" if call.principal is None else f" sub={call.principal.subject}",
            )


class ErrorClassification:
    """Domain errors pass on as they are; anything else is a bug, logged once and made opaque.

    A bug fails every call that meets it: the first of each kind per interval is logged with
    its request id and traceback, the others counted (:class:`ThrottledLog`), so a failure
    hitting every call cannot flood the log. The client is told only the request id.
    """

    def __init__(self, unexpected: ThrottledLog) -> None:
        self._unexpected = unexpected

    async def __call__(self, call: CallInfo, proceed: Callable[[], Awaitable[T]]) -> T:
        try:
            return await proceed()
        except (LedgerdError, CallAnsweredError):
            raise
        except Exception as error:
            self._unexpected.unexpected(error, call.request_id)
            raise UnexpectedError(call.request_id) from error


async def deadline(call: CallInfo, proceed: Callable[[], Awaitable[T]]) -> T:
    """Run the call under the client's deadline (see :mod:`ledgerd.kernel.deadline`).

    Past it the call is cancelled at its next await and ends with ``DEADLINE_EXCEEDED``; the
    database bounds its statements by what is left.
    """
    if call.timeout_s is None:
        return await proceed()  # no scope to open: an enclosing deadline, if any, still holds
    async with deadline_scope(call.timeout_s):
        return await proceed()


class AdmissionControl:
    """Each call holds one of ``admission``'s permits while it runs, or is refused OVERLOADED.

    Services in ``exempt_services`` (health checking, reflection) take no permit: probes must
    be answered when the server is full, and a health Watch stream would otherwise hold a
    permit for as long as it stays open. Methods in ``exempt_methods`` (full paths) neither:
    event streams stay open for hours, and are bounded by their own limit.
    """

    def __init__(
        self,
        admission: Admission,
        *,
        exempt_services: Collection[str],
        exempt_methods: Collection[str] = (),
    ) -> None:
        self._admission = admission
        self._exempt = frozenset(exempt_services)
        self._exempt_methods = frozenset(exempt_methods)

    async def __call__(self, call: CallInfo, proceed: Callable[[], Awaitable[T]]) -> T:
        if call.service in self._exempt or call.method in self._exempt_methods:
            return await proceed()
        with self._admission.admit():
            return await proceed()
