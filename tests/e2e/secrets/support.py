"""What the secrets' end-to-end tests share: one ``ledgerd`` command run to its end."""

from __future__ import annotations

import asyncio

from tests.e2e.grpc.test_serve import LEDGERD, ledgerd_environment

COMMAND_WAIT_S = 60.0  # a bound for the test to fail rather than hang, not a measurement


async def run_ledgerd(command: str, database_url: str, **settings: str) -> tuple[int, str]:
    """``ledgerd COMMAND`` with ``settings`` as ``LEDGERD_*``: its exit code and its output."""
    process = await asyncio.create_subprocess_exec(
        str(LEDGERD),
        command,
        env=ledgerd_environment(database_url, **settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(COMMAND_WAIT_S):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()
