"""What the gateway tells a client about a failure: one mapping for answers and for streams.

Before an answer starts, a failure is a problem response (its status, a JSON body
``{"code", "message", "details"}`` and maybe headers); once an NDJSON stream has started, the
same body becomes its last line. Both come from :func:`problem_of`.
"""

from __future__ import annotations

import logging

from ledgerd.gateway.invoker import RemoteCallError
from ledgerd.gateway.router import BadPathError, MethodNotAllowedError, RouteNotFoundError
from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.platform.api.errors import http_status_of_grpc
from ledgerd.platform.api.http_problems import Problem, problem_of_error
from ledgerd.platform.api.pipeline import UnexpectedError
from ledgerd.platform.throttled_log import ThrottledLog

log = logging.getLogger("ledgerd.access")

__all__ = ["Problem", "problem_of"]


def problem_of(error: Exception, request_id: str, unexpected: ThrottledLog) -> Problem:
    """The problem ``error`` is for the client; an unexpected one is logged, not shown.

    A call's own failures were classified by the call pipeline (a bug there is an
    :class:`UnexpectedError`, logged already). What is left to log here is a bug in the
    gateway's own work around the call (routing, transcoding, rendering): ``unexpected`` logs
    the first of each kind per interval in full and counts the rest, so a failure that hits
    every request cannot flood the log.
    """
    if isinstance(error, LedgerdError):
        return problem_of_error(error)
    if isinstance(error, RouteNotFoundError):
        return Problem(404, "ROUTE_NOT_FOUND", str(error))
    if isinstance(error, MethodNotAllowedError):
        return Problem(405, "METHOD_NOT_ALLOWED", str(error))
    if isinstance(error, BadPathError):
        return Problem(400, str(ErrorCode.VALIDATION_FAILED), str(error))
    if isinstance(error, RemoteCallError):
        return Problem(http_status_of_grpc(error.code), error.code.name, error.message)
    if not isinstance(error, UnexpectedError):
        unexpected.unexpected(error, request_id)
        error = UnexpectedError(request_id)
    return problem_of_error(error)
