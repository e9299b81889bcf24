"""A domain error as HTTP tells it: a status, a problem body and the headers that go with it.

One mapping for every HTTP edge: the REST gateway's answers and NDJSON streams, and the event
streams (Server-Sent Events, WebSocket handshakes), so a refusal reads the same on each. The
body is ``{"code", "message", "details"}``; an authentication refusal carries RFC 6750's
``WWW-Authenticate`` challenge, an overload its ``Retry-After``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from starlette.responses import JSONResponse

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.platform.api.authentication import ERROR_DETAIL, SCOPE_DETAIL
from ledgerd.platform.api.errors import ERROR_CODES, retry_after_seconds
from ledgerd.platform.api.pipeline import UnexpectedError

# The protection space a bearer challenge names (RFC 9110, 11.5).
REALM = "ledgerd"
INTERNAL = "INTERNAL"
# What RFC 6750 §3 forbids in its quoted values (scope tokens, error codes): quotes, backslashes,
# controls, non-ASCII.
_UNQUOTABLE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


@dataclass(frozen=True, slots=True)
class Problem:
    status: int
    code: str
    message: str
    details: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "details": self.details}

    def json(self) -> str:
        """The body on one line (a stream's last message)."""
        return json.dumps(self.body, separators=(",", ":"))

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def bearer_challenge(error: LedgerdError) -> str | None:
    """RFC 6750 §3's ``WWW-Authenticate`` for an authentication refusal, else None.

    Built from the error's code and details alone, so a refusal forwarded from another ledgerd
    over gRPC gets the same challenge as one made here.
    """
    if error.code == ErrorCode.UNAUTHENTICATED:
        # No error code when no credential was presented (RFC 6750 §3.1).
        error_code = error.details.get(ERROR_DETAIL)
        extra = "" if error_code is None else f', error="{_quotable(error_code)}"'
        return f'Bearer realm="{REALM}"{extra}'
    if error.code == ErrorCode.INSUFFICIENT_SCOPE:
        scope = error.details.get(SCOPE_DETAIL)
        extra = "" if scope is None else f', scope="{_quotable(scope)}"'
        return f'Bearer realm="{REALM}", error="insufficient_scope"{extra}'
    return None


def _quotable(text: str) -> str:
    """``text`` without what could end a quoted string or the header (it comes from details)."""
    return _UNQUOTABLE.sub("", text)


def problem_of_error(error: LedgerdError | UnexpectedError) -> Problem:
    """The problem a call's failure is, as the call pipeline classified it."""
    if isinstance(error, UnexpectedError):
        return Problem(500, INTERNAL, error.message)
    headers = {}
    retry_after = retry_after_seconds(error)
    if retry_after is not None:
        # Retry-After takes whole seconds (RFC 9110, 10.2.3); the exact hint is in details.
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    challenge = bearer_challenge(error)
    if challenge is not None:
        headers["www-authenticate"] = challenge
    status = ERROR_CODES.transport(error.code).http
    return Problem(status, str(error.code), error.message, dict(error.details), headers)
