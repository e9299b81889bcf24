"""One ledger seen over gRPC by a fault test: set up, read back, and checked after the faults.

The answers' bookkeeping is :mod:`tests.faults.outcomes`'; this is what a test compares it with.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format

from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc
from tests.faults.outcomes import Answer

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

CALL_TIMEOUT_S = 30.0
# How long the ledger must stay unchanged to count as settled (groups still committing for
# callers who left have finished).
QUIET_S = 0.5


@dataclass
class Tally:
    """Each key's last answer, as its client saw it, and the body it was sent with."""

    answers: dict[str, Answer] = field(default_factory=dict)
    bodies: dict[str, pb.TransferInput] = field(default_factory=dict)

    def record(self, item: pb.TransferInput, answer: Answer) -> None:
        self.answers[item.idempotency_key] = answer
        self.bodies[item.idempotency_key] = item

    def keys(self, answer: Answer) -> set[str]:
        return {key for key, seen in self.answers.items() if seen is answer}


class Ledger:
    """One ledger, reached over gRPC, for setting up and checking what was written."""

    def __init__(self, grpc_port: int, ledger: str) -> None:
        self._address = f"127.0.0.1:{grpc_port}"
        self.id = ledger

    @staticmethod
    def json_of(item: pb.TransferInput) -> dict[str, Any]:
        return json_format.MessageToDict(item, preserving_proto_field_name=True)

    async def _stub(self) -> tuple[grpc.aio.Channel, LedgerServiceAsyncStub]:
        channel = grpc.aio.insecure_channel(self._address)
        return channel, ledger_pb2_grpc.LedgerServiceStub(channel)

    async def open(self, accounts: Iterable[str]) -> None:
        channel, stub = await self._stub()
        async with channel:
            await stub.CreateLedger(pb.CreateLedgerRequest(id=self.id), timeout=CALL_TIMEOUT_S)
            for account in accounts:
                await stub.CreateAccount(
                    pb.CreateAccountRequest(ledger=self.id, id=account, asset="USD/2"),
                    timeout=CALL_TIMEOUT_S,
                )

    async def transfers(self) -> dict[str, pb.Transfer]:
        """Every transfer of the ledger, by idempotency key (a key twice fails the check)."""
        channel, stub = await self._stub()
        found: list[pb.Transfer] = []
        async with channel:
            token = ""
            while True:
                page = await stub.ListTransfers(
                    pb.ListTransfersRequest(ledger=self.id, page_size=1000, page_token=token),
                    timeout=CALL_TIMEOUT_S,
                )
                found.extend(page.transfers)
                token = page.next_page_token
                if not token:
                    break
        twice = [
            key for key, count in Counter(t.idempotency_key for t in found).items() if count > 1
        ]
        assert not twice, f"keys written twice: {twice}"
        return {transfer.idempotency_key: transfer for transfer in found}

    async def settled_transfers(self) -> dict[str, pb.Transfer]:
        """The transfers once nothing more is being written (callers that left included)."""
        before = await self.transfers()
        while True:
            await asyncio.sleep(QUIET_S)
            now = await self.transfers()
            if now.keys() == before.keys():
                return now
            before = now

    async def post_again(self, items: Sequence[pb.TransferInput]) -> dict[str, bool]:
        """Post each again under its key, with no deadline; whether each was a replay."""
        channel, stub = await self._stub()
        replayed: dict[str, bool] = {}
        async with channel:
            for start in range(0, len(items), 500):
                chunk = items[start : start + 500]
                response = await stub.PostTransfers(
                    pb.PostTransfersRequest(ledger=self.id, transfers=chunk),
                    timeout=CALL_TIMEOUT_S,
                )
                for item, result in zip(chunk, response.results, strict=True):
                    assert result.HasField("transfer"), result
                    replayed[item.idempotency_key] = result.replayed
        return replayed

    async def balances_match(self, transfers: dict[str, pb.Transfer]) -> bool:
        """Whether every account's balance is the sum of the transfers found."""
        expected: Counter[str] = Counter()
        for transfer in transfers.values():
            for leg in transfer.legs:
                expected[leg.credit_account] += leg.amount
                expected[leg.debit_account] -= leg.amount
        channel, stub = await self._stub()
        async with channel:
            for account in expected:
                got = await stub.GetBalance(
                    pb.GetBalanceRequest(ledger=self.id, account=account), timeout=CALL_TIMEOUT_S
                )
                net = got.balance.posted_credits - got.balance.posted_debits
                if net != expected[account]:
                    return False
        return True
