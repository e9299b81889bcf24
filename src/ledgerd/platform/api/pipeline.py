"""One request pipeline: the concerns every call passes through, whichever transport it came on.

Both transports run the same :class:`CallPipeline` object around the application call: the gRPC
server from one interceptor around each method (:mod:`ledgerd.platform.api.grpc_pipeline`), the
REST gateway from its in-process invoker (:mod:`ledgerd.gateway.invoker`). What a concern
decides is therefore decided once for both: which request id, which deadline, whether the call
is admitted, what the access log says, what is a domain error and what is a bug (and, next,
who the caller is and what they may do). The edges keep only what is theirs: reading headers or
metadata and the client's timeout into a :class:`CallInfo`, echoing the request id the way the
transport does, and turning the outcome into a gRPC status or an HTTP answer.

A concern is ``async (call, proceed) -> result``: it may act before and after ``proceed()``,
or refuse by raising instead of proceeding. A streamed answer is pushed through the pipeline
(the application step sends each message itself), so a concern's scope covers the whole stream,
the sending included: a permit or a deadline holds until the last message is out.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ledgerd.kernel.ids import random_id
from ledgerd.kernel.principal import Principal

T = TypeVar("T")

# The metadata key (gRPC) and header (HTTP) a request id travels in, both ways.
REQUEST_ID_KEY = "x-request-id"
# A client's request id is kept if it is 1-128 of these characters, whatever the transport: it
# goes into log lines and headers as it is, so nothing that could break either is taken.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

GRPC = "grpc"
REST = "rest"


def request_id_of(metadata: Mapping[str, str]) -> str:
    """The call's request id: the client's if it is well-formed, else a new one.

    The one rule for both transports. Keeping a well-formed id, it gives the same answer
    however often it is asked, so an edge may settle the id early (the REST gateway needs it
    for answers that never become a call) and pass it on in the call's metadata.
    """
    supplied = metadata.get(REQUEST_ID_KEY)
    if supplied is not None and REQUEST_ID_PATTERN.fullmatch(supplied):
        return supplied
    return random_id()


@dataclass(slots=True)
class CallInfo:
    """One call as every concern sees it, whichever transport it came on."""

    method: str  # as gRPC names it: "/ledgerd.v1.LedgerService/PostTransfer"
    transport: str  # GRPC or REST
    # The call's metadata: gRPC's invocation metadata, or the headers the gateway passes on as
    # such (lower-case keys; binary values left out).
    metadata: Mapping[str, str]
    request_id: str
    timeout_s: float | None  # the client's deadline, in seconds from the call's start
    # The request message of a call with one (unary request); None for a client stream, whose
    # messages arrive after the call begins. Authorisation reads the ledger a call acts on here.
    request: object | None = None
    # Who is calling: set by authentication, for the concerns after it.
    principal: Principal | None = None
    # The identity of the client certificate the connection was verified with (mTLS, gRPC
    # only): its SAN URI, else its subject CN; None without one. Authentication maps it to a
    # principal when the call carries no access token.
    peer: str | None = None
    # A single-use ticket the edge took from the request's URL in place of an access token: a
    # browser's event stream (EventSource, WebSocket) cannot send an Authorization header. Only
    # the HTTP stream edges set it; authentication redeems it (and never logs it).
    ticket: str | None = None
    # The status an application gave the call through its transport itself (a gRPC servicer
    # setting its context's code), instead of a result or an error; the access log reports it.
    answered: str | None = None

    @property
    def service(self) -> str:
        """``ledgerd.v1.LedgerService`` of ``/ledgerd.v1.LedgerService/PostTransfer``."""
        return self.method[1:].partition("/")[0]


class CallAnsweredError(Exception):
    """The application answered the call through its transport itself (a gRPC abort).

    Neither a domain error nor a bug: the concerns let it through untouched, and the edge
    re-raises ``answer``, which its transport knows how to finish.
    """

    def __init__(self, status: str, answer: BaseException) -> None:
        super().__init__(status)
        self.status = status
        self.answer = answer


class UnexpectedError(Exception):
    """A failure no rule foresaw (a bug), already logged: the client learns only the request id."""

    def __init__(self, request_id: str) -> None:
        self.message = f"internal error; request id {request_id}"
        super().__init__(self.message)


class Concern(Protocol):
    """One cross-cutting concern: acts around ``proceed()``, the rest of the pipeline."""

    def __call__(self, call: CallInfo, proceed: Callable[[], Awaitable[T]], /) -> Awaitable[T]: ...


class CallPipeline:
    """``concerns`` around every call, the first outermost; built once, shared by the transports."""

    def __init__(self, concerns: Sequence[Concern]) -> None:
        self._concerns = tuple(concerns)

    @property
    def concerns(self) -> tuple[Concern, ...]:
        return self._concerns

    def run(self, call: CallInfo, application: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """``application()`` — the call itself — inside every concern, in order."""
        return self._from(0, call, application)

    def _from(
        self, index: int, call: CallInfo, application: Callable[[], Awaitable[T]]
    ) -> Awaitable[T]:
        if index == len(self._concerns):
            return application()
        return self._concerns[index](call, lambda: self._from(index + 1, call, application))
