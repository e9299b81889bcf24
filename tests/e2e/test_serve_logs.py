"""``ledgerd serve``'s output: its banner on stdout, and log records in one format on stderr.

Issue 12, item 12: uvicorn's lines and ledgerd's plain prints used to interleave in two
formats, and every stop printed the collector's summary, at INFO.
"""

from __future__ import annotations

import asyncio
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from ledgerd.main.cli import AUTH_REQUIRED
from ledgerd.main.contexts.identity import KEYS_UNSEALED
from tests.e2e.grpc.test_serve import (
    LEDGERD,
    LOG_RECORD,
    START_WAIT_S,
    STOP_WAIT_S,
    STOPPED,
    STOPPING,
    ledgerd_environment,
    says,
)

BANNER = (
    re.compile(
        r"^gRPC  127\.0\.0\.1:\d+  "
        r"\(ledgerd\.v1\.LedgerService, ledgerd\.v1\.StreamService, ledgerd\.v1\.WebhookService, "
        r"health, reflection\)$"
    ),
    re.compile(r"^REST  http://127\.0\.0\.1:\d+/v1/ledgers$"),
    re.compile(r"^docs  http://127\.0\.0\.1:\d+/docs   \(OpenAPI: http://\S+/openapi\.yaml\)$"),
)
GC_PAUSES = re.compile(r"^gc: [\d.]+ ms in \d+ collections, longest [\d.]+ ms \(gen0 \d+, ")


@dataclass(frozen=True, slots=True)
class Run:
    exit_code: int
    stdout: list[str]
    stderr: list[str]

    @property
    def log(self) -> str:
        return "\n".join(["stdout:", *self.stdout, "stderr:", *self.stderr])


async def _serve_and_stop(tmp_path: Path, **settings: str) -> Run:
    """``ledgerd serve`` until its banner is out, then SIGTERM; its two streams apart."""
    env = ledgerd_environment(
        f"sqlite+aiosqlite:///{tmp_path}/logs.db",
        grpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        **settings,
    )
    process = await asyncio.create_subprocess_exec(
        str(LEDGERD),
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    banner: list[str] = []
    try:
        async with asyncio.timeout(START_WAIT_S):
            while raw := await process.stdout.readline():
                banner.append(raw.decode().rstrip("\n"))
                if banner[-1].startswith("docs "):
                    break
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STOP_WAIT_S):
            rest, errors = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    return Run(
        await process.wait(),
        [*banner, *rest.decode().splitlines()],
        errors.decode().splitlines(),
    )


async def test_serve_prints_its_banner_and_logs_in_one_format(tmp_path: Path) -> None:
    run = await _serve_and_stop(tmp_path, auth="default")

    assert run.exit_code == 0, run.log
    assert len(run.stdout) == len(BANNER), run.log
    assert all(line.match(out) for line, out in zip(BANNER, run.stdout, strict=True)), run.log
    records = [LOG_RECORD.match(line) for line in run.stderr]
    assert all(records), run.log
    assert says(run.stderr[-1], STOPPED), run.log
    assert any(says(line, STOPPING) for line in run.stderr), run.log
    assert any(says(line, AUTH_REQUIRED) for line in run.stderr), run.log  # the default
    # Quiet by default: no collector summary, no web server narrating what the banner says; the
    # one warning is that the signing keys are stored unencrypted (no wrapping key is set).
    warnings = [record["message"] for record in records if record and record["level"] != "INFO"]
    assert warnings == [KEYS_UNSEALED], run.log
    assert not any(record and GC_PAUSES.match(record["message"]) for record in records), run.log
    assert not any(record and record["logger"].startswith("uvicorn") for record in records)


async def test_the_collectors_summary_is_a_debug_record(tmp_path: Path) -> None:
    run = await _serve_and_stop(tmp_path, log_level="DEBUG")

    assert run.exit_code == 0, run.log
    summaries = [
        record
        for line in run.stderr
        if (record := LOG_RECORD.match(line)) and GC_PAUSES.match(record["message"])
    ]
    assert [record["level"] for record in summaries] == ["DEBUG"], run.log
