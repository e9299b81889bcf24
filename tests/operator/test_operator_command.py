"""`ledgerd-operator`, the console script, against kmock's Kubernetes API emulator.

The installed command in a process of its own, logging in with a kubeconfig that names the
emulator (see conftest.py for what the emulator does and does not do), as a developer would
run it against a cluster: it must find the `Ledgerd`, create its migration Job, and stop
cleanly on SIGTERM.
"""

import asyncio
import os
import signal
import sys
from pathlib import Path

import kmock
import yaml

from tests.operator.conftest import JOBS, LEDGERDS, Cluster, declare_resources, ledgerd

COMMAND = Path(sys.executable).with_name("ledgerd-operator")


def _kubeconfig(path: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "nobody", "user": {}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "nobody"}}],
        "current-context": "emulator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def test_the_command_reconciles_and_stops_on_sigterm(
    kmock: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    declare_resources(kmock)
    cluster = Cluster(kmock)
    await cluster.create(LEDGERDS, ledgerd("books", "1.0.0"))
    environment = os.environ | {"KUBECONFIG": str(_kubeconfig(tmp_path / "config", str(kmock.url)))}
    process = await asyncio.create_subprocess_exec(
        str(COMMAND),
        "--resync-seconds=0.5",
        "--liveness=http://127.0.0.1:0/healthz",
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await cluster.until("a migration Job", lambda: bool(cluster.names(JOBS)))
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()[-2000:]
    (job,) = cluster.names(JOBS)
    assert job.startswith("books-migrate-1-0-0-")
