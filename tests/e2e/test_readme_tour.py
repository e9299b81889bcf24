"""README's tour, run as it is written: `make run`'s two commands, then the tour's shell block.

The block is taken from README.md itself, so the test follows the page; only the REST port is
changed (the server takes a free one), the token line is the one `serve --demo` printed (as a
reader pastes it), and the commands run under `bash -euo pipefail`.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import service_unavailable
from tests.e2e.grpc.test_serve import LEDGERD, Served, ledgerd_environment

README = Path(__file__).parents[2] / "README.md"
TOUR_PORT = "localhost:8080"
REST = re.compile(r"^REST\s+http://127\.0\.0\.1:(\d+)/v1/ledgers$")
# README's line (a placeholder, with a comment) and the line `serve --demo` prints.
TOUR_TOKEN_LINE = re.compile(r"^export LEDGERD_TOKEN=.*$", re.MULTILINE)
TOKEN_LINE = re.compile(r"^export LEDGERD_TOKEN=\S+$")
WAIT_S = 60.0  # a bound for the test to fail rather than hang, not a measurement


def tour_block() -> str:
    """The first ``sh`` block under README's "A tour" heading."""
    text = README.read_text()
    tour = text[text.index("\n## A tour\n") :]
    match = re.search(r"```sh\n(.*?)```", tour, re.DOTALL)
    assert match is not None, "README's tour has no sh block"
    return match.group(1)


async def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        service_unavailable("no curl, which README's tour uses (.ci/run installs it)")
    block = tour_block()
    assert TOUR_PORT in block
    assert TOUR_TOKEN_LINE.search(block) is not None, "README's tour sets no LEDGERD_TOKEN"
    env = ledgerd_environment(
        f"sqlite+aiosqlite:///{tmp_path}/ledgerd.db",
        grpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        auth="default",  # as `make run` serves: tokens required
    )
    migrated = subprocess.run(  # noqa: ASYNC221, S603 - one short command, our own binary
        [str(LEDGERD), "migrate"], env=env, capture_output=True, text=True, check=False
    )
    assert migrated.returncode == 0, migrated.stderr
    process = await asyncio.create_subprocess_exec(
        str(LEDGERD),
        "serve",
        "--demo",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    served = Served(process, 0, [])
    try:
        async with asyncio.timeout(WAIT_S):
            line = await served.read_until(lambda text: REST.match(text) is not None)
            token_line = await served.read_until(lambda text: TOKEN_LINE.match(text) is not None)
        port = REST.match(line).group(1)  # type: ignore[union-attr]
        steps = block.replace(TOUR_PORT, f"127.0.0.1:{port}")
        script = TOUR_TOKEN_LINE.sub(lambda _: token_line, steps)
        tour = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(WAIT_S):
            out, err = await tour.communicate()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(WAIT_S):
                await served.wait_for_exit()
    assert tour.returncode == 0, err.decode()
    balance, posted, *exported, refused = _documents(out.decode())
    assert balance["account"] == "wallet:alice"
    assert set(balance["balance"]) >= {"posted_debits", "posted_credits", "available"}
    assert posted["idempotency_key"] == "coffee-1"
    assert posted["status"] == "POSTED"
    assert exported, "the statement export printed nothing"
    assert [entry["sequence"] for entry in exported] == [
        str(number) for number in range(1, len(exported) + 1)
    ]
    assert exported[-1]["transfer_id"] == posted["id"]  # the coffee, the latest entry
    assert refused["code"] == "UNAUTHENTICATED"  # the call without a token
    assert await served.wait_for_exit() == 0, served.log


def _documents(output: str) -> list[Any]:
    """The JSON documents in ``output``, one after another (curl adds no newline of its own)."""
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = 0
    while position < len(output):
        document, end = decoder.raw_decode(output, position)
        documents.append(document)
        position = end
        while position < len(output) and output[position].isspace():
            position += 1
    return documents
