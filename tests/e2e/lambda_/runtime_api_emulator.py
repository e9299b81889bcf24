"""An emulator of the AWS Lambda Runtime API: the few endpoints a runtime client calls.

Not AWS's (its runtime interface emulator is not installable here): a small HTTP server on the
loopback that hands out the events queued with ``invoke`` and collects what the runtime client
posts back, so the real ``awslambdaric`` can drive the handler as it does in Lambda. It sends
the headers the client reads, ``Lambda-Runtime-Trace-Id`` among them (without it the client
crashes).
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

_PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:ledgerd"
_DEADLINE_S = 30


@dataclass(frozen=True)
class Outcome:
    """What the runtime client posted for one invocation: a result or an error."""

    ok: bool
    payload: Any
    seconds: float  # from the event handed out to the outcome posted


def _trace_id() -> str:
    """An X-Ray trace header as Lambda passes it: a root id (time, 96 random bits), unsampled."""
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ANN401, ARG002
        # The runtime client killed mid-poll resets its connection: the end of every test.
        return


class RuntimeApiEmulator:
    def __init__(self) -> None:
        self._events: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._outcomes: dict[str, queue.Queue[Outcome]] = {}
        self._handed_out: dict[str, float] = {}
        self.first_poll = threading.Event()  # the client asked for work: its init is over
        self.init_errors: list[Any] = []
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: Any, timeout_s: float = 60.0) -> Outcome:  # noqa: ANN401 - any JSON
        """Queue ``event`` and wait for the runtime client's answer to it."""
        request_id = str(uuid.uuid4())
        self._outcomes[request_id] = queue.Queue(maxsize=1)
        self._events.put((request_id, json.dumps(event).encode()))
        return self._outcomes[request_id].get(timeout=timeout_s)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body are two writes: without this, Nagle's algorithm and the
                # client's delayed ACK add ~40 ms to every answer, which is not Lambda's.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401, ARG002
                return  # quiet: the test reports what matters

            def _answer(
                self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{_PREFIX}/invocation/next":
                    self._answer(404)
                    return
                emulator.first_poll.set()
                request_id, body = emulator._events.get()
                emulator._handed_out[request_id] = time.perf_counter()
                self._answer(
                    200,
                    body,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(int((time.time() + _DEADLINE_S) * 1000)),
                        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                        "Lambda-Runtime-Trace-Id": _trace_id(),
                    },
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = self.path.removeprefix(_PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    emulator.init_errors.append(json.loads(body or b"null"))
                    self._answer(202)
                    return
                if (
                    len(parts) == 3
                    and parts[0] == "invocation"
                    and parts[2] in {"response", "error"}
                ):
                    request_id = parts[1]
                    seconds = time.perf_counter() - emulator._handed_out[request_id]
                    outcome = Outcome(parts[2] == "response", json.loads(body or b"null"), seconds)
                    self._answer(202)
                    emulator._outcomes[request_id].put(outcome)
                    return
                self._answer(404)

        return Handler
