"""The real Lambda runtime client (``awslambdaric``) running ``ledgerd.main.lambda_handler``.

A process as Lambda starts one (``python -m awslambdaric ledgerd.main.lambda_handler.handler``)
against the Runtime API emulator of ``runtime_api_emulator.py`` (an emulator, not AWS's), with
the settings in the environment and the database URL behind a ``secret://`` reference. It
measures the cold start (process to first poll, then the first invocation, which builds
ledgerd) and warm invocations; the figures are reported, not asserted (docs/deploy.md).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.e2e.lambda_.events import http_api_v2, response_body
from tests.e2e.lambda_.ledgerd_setup import Prepared, prepare
from tests.e2e.lambda_.runtime_api_emulator import RuntimeApiEmulator

HANDLER = "ledgerd.main.lambda_handler.handler"
START_WAIT_S = 60.0
WARM_INVOCATIONS = 20


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    return prepare(tmp_path_factory.mktemp("lambda-runtime"))


@pytest.fixture
def emulator() -> Iterator[RuntimeApiEmulator]:
    with RuntimeApiEmulator() as running:
        yield running


def _runtime(
    emulator: RuntimeApiEmulator, prepared: Prepared, log: Path, **extra: str
) -> subprocess.Popen[bytes]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("LEDGERD_")
    }
    environment |= {
        "AWS_LAMBDA_RUNTIME_API": emulator.address,
        "AWS_LAMBDA_FUNCTION_NAME": "ledgerd",
        "LEDGERD_AUTH": "required",
        "LEDGERD_DATABASE_URL": "secret://env/LEDGERD_LAMBDA_DATABASE",
        "LEDGERD_LAMBDA_DATABASE": prepared.database_url,
        "LEDGERD_LOG_LEVEL": "WARNING",
        **extra,
    }
    with log.open("wb") as output:
        return subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            [sys.executable, "-m", "awslambdaric", HANDLER],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _token(emulator: RuntimeApiEmulator, prepared: Prepared) -> str:
    """A token by the client-credentials grant, its form base64-encoded as binary bodies are."""
    answer = emulator.invoke(
        http_api_v2(
            "POST",
            "/oauth2/token",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(
                {
                    "grant_type": "client_credentials",
                    "client_id": prepared.client_id,
                    "client_secret": prepared.client_secret,
                }
            ).encode(),
            binary=True,
        )
    )
    assert answer.ok
    assert answer.payload["statusCode"] == 200, answer.payload
    token: str = json.loads(response_body(answer.payload))["access_token"]
    return token


def _stopped(process: subprocess.Popen[bytes]) -> None:
    process.kill()  # blocked in the client's poll: as Lambda ends an environment
    process.wait(timeout=10)


def test_the_runtime_client_drives_the_handler_cold_then_warm(
    emulator: RuntimeApiEmulator, prepared: Prepared, tmp_path: Path
) -> None:
    log = tmp_path / "runtime.log"
    spawned = time.perf_counter()
    process = _runtime(emulator, prepared, log)
    try:
        assert emulator.first_poll.wait(START_WAIT_S), log.read_text()
        init_s = time.perf_counter() - spawned
        cold = emulator.invoke(http_api_v2("GET", "/readyz"))
        assert cold.ok, cold.payload
        assert cold.payload["statusCode"] == 200
        assert json.loads(response_body(cold.payload)) == {"ready": True}
        unauthenticated = emulator.invoke(http_api_v2("GET", "/v1/ledgers"))
        assert unauthenticated.payload["statusCode"] == 401
        warm = [emulator.invoke(http_api_v2("GET", "/readyz")) for _ in range(WARM_INVOCATIONS)]
        assert all(outcome.ok and outcome.payload["statusCode"] == 200 for outcome in warm)
        live = [emulator.invoke(http_api_v2("GET", "/healthz")) for _ in range(WARM_INVOCATIONS)]
        assert all(outcome.ok and outcome.payload["statusCode"] == 200 for outcome in live)
        auth = {"Authorization": f"Bearer {_token(emulator, prepared)}"}
        calls = [
            emulator.invoke(http_api_v2("GET", "/v1/ledgers", headers=auth))
            for _ in range(WARM_INVOCATIONS)
        ]
        assert all(outcome.ok and outcome.payload["statusCode"] == 200 for outcome in calls)
    finally:
        _stopped(process)
    assert emulator.init_errors == []
    ready_ms = sorted(outcome.seconds * 1000 for outcome in warm)
    live_ms = sorted(outcome.seconds * 1000 for outcome in live)
    calls_ms = sorted(outcome.seconds * 1000 for outcome in calls)
    print(  # noqa: T201 - the measurement this test reports (docs/deploy.md)
        f"\nlambda runtime: init (spawn to first poll) {init_s * 1000:.0f} ms, "
        f"cold invocation (GET /readyz) {cold.seconds * 1000:.0f} ms; warm, median (max) of "
        f"{WARM_INVOCATIONS}: GET /readyz {statistics.median(ready_ms):.2f} ms "
        f"({ready_ms[-1]:.2f}), GET /healthz {statistics.median(live_ms):.2f} ms "
        f"({live_ms[-1]:.2f}), GET /v1/ledgers with a token {statistics.median(calls_ms):.2f} ms "
        f"({calls_ms[-1]:.2f})"
    )


def test_a_failed_invocation_is_reported_and_the_next_one_served(
    emulator: RuntimeApiEmulator, prepared: Prepared, tmp_path: Path
) -> None:
    process = _runtime(emulator, prepared, tmp_path / "runtime.log")
    try:
        # Not an HTTP event: mangum cannot tell what sent it, and says so.
        failed = emulator.invoke({"detail-type": "Scheduled Event"})
        assert not failed.ok
        assert failed.payload["errorType"] == "RuntimeError"
        served = emulator.invoke(http_api_v2("GET", "/healthz"))
        assert served.ok
        assert response_body(served.payload) == b"ok"
    finally:
        _stopped(process)


def test_sigterm_closes_the_function_while_the_client_polls_in_a_thread(
    emulator: RuntimeApiEmulator, prepared: Prepared, tmp_path: Path
) -> None:
    """Lambda sends SIGTERM before shutting an environment down (when an extension is there).

    The client polls in a thread on the python3.12+ runtimes (``AWS_EXECUTION_ENV`` says which),
    so the main thread can take the signal: the handler closes the pool and the process exits
    0. Blocked in the poll itself (python3.11), a process takes no signal until Lambda kills it.
    """
    log = tmp_path / "runtime.log"
    process = _runtime(emulator, prepared, log, AWS_EXECUTION_ENV="AWS_Lambda_python3.12")
    try:
        assert emulator.invoke(http_api_v2("GET", "/readyz")).ok
        assert emulator.first_poll.wait(START_WAIT_S)
        time.sleep(0.2)  # back in its poll for the next event
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, log.read_text()
    finally:
        if process.poll() is None:
            _stopped(process)
