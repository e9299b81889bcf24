"""asyncpg's abandoned TLS probes: an error no one can act on, logged at DEBUG, not as ERROR.

asyncpg opens each connection by asking the server whether it speaks TLS (``sslmode=prefer``,
its default) on a protocol object whose future holds the answer. When the task opening the
connection is cancelled while ``loop.create_connection`` is finishing (a shutdown, a connect
timeout, on a busy loop), asyncio closes the new transport and asyncpg's protocol sets
``ConnectionError('unexpected connection_lost() call')`` on that future, which nothing awaits
any more. When the future is collected asyncio reports "Future exception was never retrieved"
at ERROR, with a traceback — seen as the last line of a ``serve`` that had stopped cleanly while
its database stalled. Nothing was lost: the connection never existed. Only that exact report is
lowered; every other one goes to asyncio's own handler as before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

log = logging.getLogger(__name__)

_NEVER_RETRIEVED: Final = "Future exception was never retrieved"
_ABANDONED_PROBE: Final = "unexpected connection_lost() call"


def is_abandoned_probe(context: dict[str, Any]) -> bool:
    """Whether asyncio's ``context`` reports asyncpg's abandoned TLS probe, and nothing else."""
    error = context.get("exception")
    return (
        context.get("message") == _NEVER_RETRIEVED
        and type(error) is ConnectionError
        and error.args == (_ABANDONED_PROBE,)
    )


def report_quietly(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An event loop exception handler: the abandoned probe at DEBUG, the rest as asyncio does."""
    if is_abandoned_probe(context):
        log.debug("a database connection abandoned while it was being opened: %s", _ABANDONED_PROBE)
        return
    loop.default_exception_handler(context)


def quiet_abandoned_probes() -> None:
    """Install :func:`report_quietly` on the running loop (once, as a command starts)."""
    asyncio.get_running_loop().set_exception_handler(report_quietly)
