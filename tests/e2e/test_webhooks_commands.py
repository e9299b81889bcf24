"""Webhooks as an operator meets them: ``ledgerd serve`` delivering, ``ledgerd webhooks`` beside.

A real ``ledgerd serve`` process on SQLite, and the commands on the same database.

``serve`` on the embedded database runs the dispatcher itself (``LEDGERD_WEBHOOKS_IN_SERVE=auto``).
A partner refuses one event until it is dead-lettered; ``ledgerd webhooks list`` and
``dead-letters`` show it; the partner is fixed, ``ledgerd webhooks replay`` puts the dead letter
back, and the running server delivers it. SIGTERM then stops everything cleanly.

The commands run in this process (typer's runner on the real command line, configured by
environment, in a thread: each runs its own event loop, and the receiver needs this one), where
a fresh interpreter each would cost seconds.
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import httpx
from typer.testing import CliRunner, Result

from ledgerd.main.cli import app
from tests.e2e.grpc.test_serve import ledgerd_serve
from tests.webhook_receiver import Arrival, receiving, signed_by

REST_LINE = re.compile(r"^REST\s+(http://127\.0\.0\.1:\d+)/")
COMMAND_WAIT_S = 60.0
LEDGER = "books"
# Fast retries, so the dead letter comes in a blink; a short poll, so the replay does too.
SETTINGS = {
    "webhooks_first_retry_seconds": "0.01",
    "webhooks_max_retry_seconds": "0.02",
    "webhooks_max_attempts": "2",
    "webhooks_poll_interval_seconds": "0.1",
    "webhooks_allowed_networks": "127.0.0.0/8",  # the receiver is on this host
}


async def _ledgerd(database_url: str, *argv: str) -> tuple[int, str, str]:
    def invoke() -> Result:
        return CliRunner().invoke(app, list(argv), env={"LEDGERD_DATABASE_URL": database_url})

    async with asyncio.timeout(COMMAND_WAIT_S):
        result = await asyncio.to_thread(invoke)
    return result.exit_code, result.stdout, result.stderr


async def test_serve_delivers_and_the_commands_list_and_replay_a_dead_letter(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/hooks.db"
    async with (
        receiving() as receiver,
        ledgerd_serve(url, **SETTINGS) as served,
    ):
        rest = REST_LINE.match(await served.read_until(lambda line: bool(REST_LINE.match(line))))
        assert rest is not None
        served.drain()
        async with httpx.AsyncClient(base_url=rest.group(1), timeout=COMMAND_WAIT_S) as http:
            for path, body in (
                ("/v1/ledgers", {"id": LEDGER}),
                (f"/v1/ledgers/{LEDGER}/accounts", {"id": "bank", "asset": "USD/2"}),
                (f"/v1/ledgers/{LEDGER}/accounts", {"id": "alice", "asset": "USD/2"}),
            ):
                assert (await http.post(path, json=body)).status_code == 200
            created = (
                await http.post(
                    f"/v1/ledgers/{LEDGER}/webhooks", json={"url": receiver.url("/partner")}
                )
            ).json()
            webhook, secret = created["webhook"]["id"], created["secret"]
            refused_sequences = {4}  # the first transfer's event: after the ledger and accounts

            async def refuses_the_first_transfer(arrival: Arrival) -> int:
                return 500 if arrival.sequence in refused_sequences else 200

            receiver.answers["/partner"] = refuses_the_first_transfer
            for key, amount in (("t1", 100), ("t2", 200)):
                posted = await http.post(
                    f"/v1/ledgers/{LEDGER}/transfers",
                    json={
                        "idempotency_key": key,
                        "legs": [
                            {"debit_account": "bank", "credit_account": "alice", "amount": amount}
                        ],
                    },
                )
                assert posted.status_code == 200, posted.text
            # Two attempts at event 4, then event 5 delivered: the endpoint went on.
            await receiver.wait_for(
                lambda: [a.sequence for a in receiver.at("/partner")] == [4, 4, 5]
            )

            # Its dead letter is recorded once the dispatcher has moved past it.
            async with asyncio.timeout(COMMAND_WAIT_S):
                while True:
                    code, listed, _ = await _ledgerd(url, "webhooks", "list", LEDGER)
                    assert code == 0
                    if re.search(rf"^{webhook}\s+enabled\s+5\s+0\s+-\s+1\s", listed, re.MULTILINE):
                        break
                    await asyncio.sleep(0.1)
            assert receiver.url("/partner") in listed
            assert secret not in listed
            code, letters, _ = await _ledgerd(url, "webhooks", "dead-letters", webhook)
            assert code == 0
            assert re.search(
                r"^\s*4\s+ledgerd\.v1\.TransferPosted\s+2\s+\S+\s+-\s+HTTP 500$",
                letters,
                re.MULTILINE,
            ), letters

            refused_sequences.clear()  # the partner fixed its side
            code, said, err = await _ledgerd(url, "webhooks", "replay", webhook, "--from", "4")
            assert (code, err) == (0, "")
            assert said.strip() == f"1 dead letters of webhook {webhook} will be delivered again"
            await receiver.wait_for(lambda: len(receiver.at("/partner")) == 4)
            replayed = receiver.at("/partner")[-1]
            assert replayed.sequence == 4
            assert signed_by(replayed, secret)

            code, _, err = await _ledgerd(url, "webhooks", "replay", "no-such-webhook")
            assert code == 2
            assert "WEBHOOK_NOT_FOUND" in err

        served.process.send_signal(signal.SIGTERM)
        assert await served.wait_for_exit() == 0
    assert "ended on its own" not in served.log
