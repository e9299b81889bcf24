"""Requests whose end two readers could place differently: refused before anyone reads them.

With both ``Content-Length`` and ``Transfer-Encoding``, a proxy that believes one header and
the server that believes the other disagree on where the request ends, and what is left over
becomes a request of its own (request smuggling). RFC 9112, 6.1 lets a server refuse such a
request and requires it to close the connection afterwards. uvicorn's h11 parser reads the
body by ``Transfer-Encoding`` and keeps the connection open, so the application refuses: the
first thing it does with a request, pages included, is this check. (httptools, which uvicorn
prefers when it is installed, refuses such a request itself with a plain-text 400.)
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.responses import Response

from ledgerd.gateway.problems import Problem
from ledgerd.kernel.errors import ErrorCode

_BOTH = frozenset({b"content-length", b"transfer-encoding"})


def framing_refusal(headers: Iterable[tuple[bytes, bytes]]) -> Response | None:
    """The answer to a request with these (ASGI, lower-case) headers if it must be refused."""
    if not _BOTH.issubset(name for name, _ in headers):
        return None
    problem = Problem(
        400,
        str(ErrorCode.VALIDATION_FAILED),
        "a request may not have both Content-Length and Transfer-Encoding (RFC 9112, 6.1)",
        {"field": "headers"},
        # h11 sees this header and closes the connection once the answer is sent, so nothing
        # after this request on the connection is read as a request.
        {"connection": "close"},
    )
    return problem.response()
