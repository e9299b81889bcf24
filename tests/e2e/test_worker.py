"""``ledgerd worker`` as a real process: it expires due holds and stops cleanly on SIGTERM."""

import asyncio
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.money import Asset
from ledgerd.ledger.application.create_ledger import CreateLedger, CreateLedgerHandler
from ledgerd.ledger.application.open_account import OpenAccount, OpenAccountHandler
from ledgerd.ledger.application.post_transfers import PostTransfersHandler
from ledgerd.ledger.application.queries import LedgerQueries
from ledgerd.ledger.domain.model import TransferStatus
from ledgerd.ledger.domain.requests import LegRequest, TransferRequest
from ledgerd.main.container import build_container
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.main.settings import Settings
from tests.e2e.grpc.test_serve import with_file_limits

LEDGERD = Path(sys.executable).parent / "ledgerd"
# Upper bounds for waiting on the worker, not measurements: a healthy run takes a fraction.
EXPIRY_WAIT_S = 30.0
STOP_WAIT_S = 15.0
FEW_FILES = 256


async def _place_short_hold(url: str) -> str:
    container = build_container(Settings(database_url=url))
    try:
        await MIGRATIONS.upgrade(await container.get(AsyncEngine))
        await (await container.get(CreateLedgerHandler))(CreateLedger("w"))
        open_account = await container.get(OpenAccountHandler)
        for account_id in ("a", "b"):
            await open_account(OpenAccount("w", account_id, Asset("USD", 2)))
        post = await container.get(PostTransfersHandler)
        hold = TransferRequest("h1", (LegRequest("a", "b", 500),), pending=True, timeout_seconds=1)
        return (await post.post_one("w", hold)).transfer.id
    finally:
        await container.close()


async def _status_when_settled(url: str, transfer_id: str) -> TransferStatus:
    container = build_container(Settings(database_url=url))
    try:
        queries = await container.get(LedgerQueries)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + EXPIRY_WAIT_S
        status = TransferStatus.PENDING
        while status is TransferStatus.PENDING and loop.time() < give_up:
            await asyncio.sleep(0.1)
            status = (await queries.get_transfer("w", transfer_id)).status
        return status
    finally:
        await container.close()


def test_worker_expires_due_holds_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/worker.db"
    hold_id = asyncio.run(_place_short_hold(url))
    env = {**os.environ, "LEDGERD_DATABASE_URL": url}
    # It starts with the soft limit on open files of a stingy system, the hard limit kept.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    few = min(soft, FEW_FILES)
    worker = subprocess.Popen(  # noqa: S603 - our own console script, fixed arguments
        with_file_limits(f"{few}:{hard}", [str(LEDGERD), "worker", "--interval", "0.2"]),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        status = asyncio.run(_status_when_settled(url, hold_id))
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=STOP_WAIT_S)
    assert status is TransferStatus.EXPIRED, output
    assert worker.returncode == 0, output
    assert "worker stopped" in output
    assert "expired 1 holds" in output
    if hard not in {few, resource.RLIM_INFINITY}:
        assert f"open file limit raised from {few} to {hard} (the hard limit)" in output
