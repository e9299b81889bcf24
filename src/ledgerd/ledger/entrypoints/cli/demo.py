"""``ledgerd demo``: a small wallet-and-marketplace story told through the real use cases."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.money import Asset
from ledgerd.kernel.result import Err, Ok
from ledgerd.ledger.application.change_account_status import (
    ChangeAccountStatus,
    ChangeAccountStatusHandler,
)
from ledgerd.ledger.application.create_ledger import CreateLedger, CreateLedgerHandler
from ledgerd.ledger.application.expire_pending import ExpirePending, ExpirePendingHandler
from ledgerd.ledger.application.open_account import OpenAccount, OpenAccountHandler
from ledgerd.ledger.application.post_transfers import PostTransfers, PostTransfersHandler
from ledgerd.ledger.application.queries import LedgerQueries
from ledgerd.ledger.application.verify_ledger import VerifyLedger, VerifyLedgerHandler
from ledgerd.ledger.domain.model import AccountFlags, AccountStatus
from ledgerd.ledger.domain.requests import (
    CaptureRequest,
    LegRequest,
    ReversalRequest,
    TransferRequest,
    VoidRequest,
)
from ledgerd.ledger.domain.verification import VerificationReport
from ledgerd.ledger.entrypoints.cli.report import balance_table, verification_summary

USD = Asset("USD", 2)
EUR = Asset("EUR", 2)
CUSTOMERS = ("alice", "bob", "carol", "dave")
PAYMENTS = 240
PAYMENT_BATCH = 40
HOLDS = 24
# Holds that the demo lets run out, to show the expiry sweep; it waits this long for them.
SHORT_TIMEOUT_S = 1


@dataclass(frozen=True, slots=True)
class DemoHandlers:
    create_ledger: CreateLedgerHandler
    open_account: OpenAccountHandler
    change_status: ChangeAccountStatusHandler
    post: PostTransfersHandler
    expire: ExpirePendingHandler
    queries: LedgerQueries
    verify: VerifyLedgerHandler


class Demo:
    def __init__(
        self, handlers: DemoHandlers, ledger_id: str, say: Callable[[str], None], seed: int = 7
    ) -> None:
        self._h = handlers
        self._ledger = ledger_id
        self._say = say
        self._random = random.Random(seed)  # noqa: S311 - demo amounts, not security
        self._outcomes: Counter[str] = Counter()

    async def run(self) -> VerificationReport:
        await self._open_books()
        await self._deposit()
        payments = await self._payments()
        await self._deposit("payday")  # refills the wallets the payments drained
        await self._holds()
        await self._edge_cases(payments)
        await self._show_balances()
        report = await self._h.verify(VerifyLedger(self._ledger))
        self._say(verification_summary(report))
        return report

    def _key(self, label: str) -> str:
        self._outcomes["requests"] += 1
        return f"{label}-{self._outcomes['requests']}"

    async def _open_books(self) -> None:
        await self._h.create_ledger(CreateLedger(self._ledger, "ledgerd demo"))
        wallet = AccountFlags(debits_must_not_exceed_credits=True)
        accounts = [
            ("bank:usd", USD, AccountFlags(credits_must_not_exceed_debits=True)),
            *((f"wallet:{name}", USD, wallet) for name in CUSTOMERS[:-1]),
            (
                "wallet:dave",
                USD,
                AccountFlags(debits_must_not_exceed_credits=True, overdraft_limit=50_00),
            ),
            ("merchant:shop", USD, wallet),
            ("revenue:fees", USD, wallet),
            ("wallet:erin-eur", EUR, wallet),
        ]
        for account_id, asset, flags in accounts:
            await self._h.open_account(
                OpenAccount(self._ledger, account_id, asset, flags, {"demo": "true"})
            )
        self._say(f"ledger {self._ledger}: opened {len(accounts)} accounts")

    async def _deposit(self, label: str = "deposit") -> None:
        requests = [
            TransferRequest(
                self._key(label),
                (LegRequest("bank:usd", f"wallet:{name}", self._random.randint(500_00, 1200_00)),),
            )
            for name in CUSTOMERS
        ]
        await self._post(requests, label)

    async def _payments(self) -> list[str]:
        """Card payments with a 2% fee leg, posted in batches; some bounce for lack of funds."""
        posted: list[str] = []
        for _ in range(PAYMENTS // PAYMENT_BATCH):
            requests = []
            for _ in range(PAYMENT_BATCH):
                payer = f"wallet:{self._random.choice(CUSTOMERS)}"
                amount = self._random.randint(1_00, 30_00)
                fee = max(1, amount * 2 // 100)
                requests.append(
                    TransferRequest(
                        self._key("payment"),
                        (
                            LegRequest(payer, "merchant:shop", amount),
                            LegRequest("merchant:shop", "revenue:fees", fee),
                        ),
                        metadata={"order": f"o-{self._outcomes['requests']}"},
                    )
                )
            posted.extend(await self._post(requests, "payment"))
        return posted

    async def _holds(self) -> None:
        """Card authorisations: some captured in full, some in part, some voided, some expire."""
        requests = [
            TransferRequest(
                self._key("hold"),
                (
                    LegRequest(
                        f"wallet:{CUSTOMERS[i % 4]}", "merchant:shop", self._random.randint(50, 500)
                    ),
                ),
                pending=True,
                timeout_seconds=SHORT_TIMEOUT_S if i % 6 == 5 else 3600,  # noqa: PLR2004
            )
            for i in range(HOLDS)
        ]
        holds = await self._post(requests, "hold")
        settle: list[CaptureRequest | VoidRequest] = []
        for i, hold_id in enumerate(holds):
            match i % 6:
                case 0 | 1:
                    settle.append(CaptureRequest(hold_id))
                case 2 | 3:
                    settle.append(CaptureRequest(hold_id, amount=40))
                case 4:
                    settle.append(VoidRequest(hold_id))
                case _:
                    pass  # left to expire
        await self._post(settle, "settle")
        await asyncio.sleep(SHORT_TIMEOUT_S + 0.1)
        expired = await self._h.expire(ExpirePending())
        self._say(f"expiry sweep: {expired} holds expired")

    async def _edge_cases(self, payments: list[str]) -> None:
        reversal = await self._h.post.post_one(self._ledger, ReversalRequest(payments[0]))
        self._say(f"reversed payment {payments[0]} with {reversal.transfer.id}")
        replay = TransferRequest("refund-42", (LegRequest("merchant:shop", "wallet:alice", 1_00),))
        first = await self._h.post.post_one(self._ledger, replay)
        again = await self._h.post.post_one(self._ledger, replay)
        self._say(
            f"idempotent replay of refund-42 returned the original transfer: "
            f"{again.replayed and again.transfer.id == first.transfer.id}"
        )
        rejected = [
            (
                "overdraft",
                TransferRequest("too-much", (LegRequest("wallet:carol", "merchant:shop", 10**9),)),
            ),
            (
                "reused key",
                TransferRequest("refund-42", (LegRequest("merchant:shop", "wallet:alice", 2_00),)),
            ),
            (
                "asset mismatch",
                TransferRequest("eur", (LegRequest("wallet:erin-eur", "wallet:alice", 1_00),)),
            ),
            (
                "unknown account",
                TransferRequest("nobody", (LegRequest("wallet:zed", "bank:usd", 1),)),
            ),
        ]
        for label, request in rejected:
            await self._expect_rejection(label, request)
        await self._h.change_status(
            ChangeAccountStatus(self._ledger, "wallet:bob", AccountStatus.FROZEN)
        )
        await self._expect_rejection(
            "frozen account",
            TransferRequest("frozen", (LegRequest("wallet:bob", "merchant:shop", 1_00),)),
        )
        await self._h.change_status(
            ChangeAccountStatus(self._ledger, "wallet:bob", AccountStatus.OPEN)
        )

    async def _expect_rejection(self, label: str, request: TransferRequest) -> None:
        try:
            await self._h.post.post_one(self._ledger, request)
        except LedgerdError as error:
            self._say(f"rejected as expected ({label}): {error.code} - {error.message}")
        else:
            msg = f"the demo expected {label} to be rejected"
            raise AssertionError(msg)

    async def _post(
        self, requests: list[TransferRequest] | list[CaptureRequest | VoidRequest], label: str
    ) -> list[str]:
        results = await self._h.post(PostTransfers(self._ledger, requests))
        accepted = [result.value.transfer.id for result in results if isinstance(result, Ok)]
        errors = Counter(str(result.error.code) for result in results if isinstance(result, Err))
        detail = ", ".join(f"{count} {code}" for code, count in sorted(errors.items()))
        self._say(
            f"{label}: {len(accepted)} of {len(requests)} posted"
            + (f" (rejected: {detail})" if detail else "")
        )
        return accepted

    async def _show_balances(self) -> None:
        page = await self._h.queries.list_accounts(self._ledger)
        balances = [
            await self._h.queries.get_balance(self._ledger, account.id) for account in page.items
        ]
        self._say("final balances:\n" + balance_table(balances))
