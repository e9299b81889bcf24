"""ledgerd's REST API as an AWS Lambda function: ``ledgerd.main.lambda_handler.handler``.

API Gateway HTTP API (payload 2.0), REST API (payload 1.0) and ALB events reach the REST
gateway (the very ASGI app ``ledgerd serve`` runs) through mangum. Everything is built on the
first invocation, not at import, and kept for the environment's next ones: the event loop,
the container and its database pool, so a warm invocation reuses open connections. What
``serve`` runs beside the app and what Lambda runs instead: ``ledgerd.main.lambda_serving``.

Needs the ``lambda`` extra (``pip install 'ledgerd[lambda]'``); docs/deploy.md, "AWS Lambda".
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Any

from mangum import Mangum

from ledgerd.main.lambda_serving import LambdaServing, start_serving
from ledgerd.main.logs import configure_logging
from ledgerd.main.settings import Settings
from ledgerd.main.settings_errors import load_settings

# Text bodies go back as they are; any other media type is base64-encoded (mangum's rule), so
# the API's own text types are named here besides mangum's defaults.
TEXT_MEDIA_TYPES = [
    "text/",
    "application/json",
    "application/x-ndjson",
    "application/yaml",
    "application/problem+json",
]


class LambdaStartError(Exception):
    """The function cannot start: the settings' problems, one per line."""


class LambdaFunction:
    """The handler Lambda calls: builds ledgerd once, then answers each event with it.

    ``settings``: what to run with (default: the ``LEDGERD_*`` environment, read on the first
    invocation, as ``serve`` reads it).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serving: LambdaServing | None = None
        self._adapter: Mangum | None = None
        self._starting = threading.Lock()

    @property
    def started(self) -> bool:
        return self._adapter is not None

    def __call__(self, event: Mapping[str, Any], context: object) -> dict[str, Any]:
        adapter, loop, serving = self._started()
        loop.run_until_complete(serving.upkeep.run_due())
        # mangum runs the app on the current event loop: ours, with the pool's connections.
        asyncio.set_event_loop(loop)
        return adapter(dict(event), context)  # type: ignore[arg-type]  # mangum's TypedDicts

    def _started(self) -> tuple[Mangum, asyncio.AbstractEventLoop, LambdaServing]:
        with self._starting:
            if self._adapter is None:
                self._start()
        assert self._adapter is not None  # noqa: S101 - set by _start or it raised
        assert self._loop is not None  # noqa: S101
        assert self._serving is not None  # noqa: S101
        return self._adapter, self._loop, self._serving

    def _start(self) -> None:
        settings = self._settings or _environment_settings()
        configure_logging(settings.log_level)
        # Inside the runtime the root logger has the client's handler already (its lines carry
        # the request id, for CloudWatch), which basicConfig leaves alone, level included.
        logging.getLogger().setLevel(settings.log_level)
        # mangum logs each request at INFO: the gateway's access log has them, with request ids.
        logging.getLogger("mangum.http").setLevel(logging.WARNING)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            serving = loop.run_until_complete(start_serving(settings))
        except BaseException:
            asyncio.set_event_loop(None)
            loop.close()
            raise
        self._loop, self._serving = loop, serving
        # lifespan off: the app has no lifespan events (the container is ours to close).
        self._adapter = Mangum(serving.app, lifespan="off", text_mime_types=TEXT_MEDIA_TYPES)

    def close(self) -> None:
        """Close the database pool and the rest; the next invocation would start afresh."""
        loop, serving = self._loop, self._serving
        self._adapter = self._loop = self._serving = None
        if loop is None or serving is None:
            return
        try:
            loop.run_until_complete(serving.aclose())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _environment_settings() -> Settings:
    settings = load_settings()
    if isinstance(settings, list):
        raise LambdaStartError("\n".join(settings))
    return settings


handler = LambdaFunction()


def _close_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # Lambda sends SIGTERM before it shuts an environment down (when an extension is
    # registered): the pool's connections are closed rather than left to the server to time out.
    # Seen only while the runtime client polls in a thread (python3.12+ runtimes): the main
    # thread is in Python then, not blocked in the client's C poll.
    handler.close()
    raise SystemExit(0)


if "AWS_LAMBDA_RUNTIME_API" in os.environ:  # inside the runtime (awslambdaric), not in tests
    signal.signal(signal.SIGTERM, _close_on_sigterm)
