"""Model-based test: random operations through the ledger's use cases, on the fakes.

Hypothesis drives the real handlers (posting, settling, reversing, expiring, freezing,
replaying, batching) and after every step checks the ledger against

* its own invariants: per asset, debits equal credits (posted and pending); no constrained
  account beyond its limit; every ``available`` within int64; every account equal to the
  fold of its entries; ``verify`` OK;
* a rejected request (or an aborted batch) left the store exactly as it was;
* an independent model kept by this test: which requests must succeed or fail with which
  code, what every balance and every transfer's status must be, and what a replay returns.

``LEDGERD_STATEFUL_EXAMPLES`` / ``LEDGERD_STATEFUL_STEPS`` make the search longer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar, assert_never

from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.money import MAX_AMOUNT, Asset
from ledgerd.kernel.result import Err, Ok
from ledgerd.ledger.application.change_account_status import ChangeAccountStatus
from ledgerd.ledger.application.create_ledger import CreateLedger
from ledgerd.ledger.application.expire_pending import ExpirePending
from ledgerd.ledger.application.open_account import OpenAccount
from ledgerd.ledger.application.post_transfers import PostingResult, PostTransfers
from ledgerd.ledger.application.verify_ledger import VerifyLedger
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import (
    AccountFlags,
    AccountStatus,
    Balances,
    Layer,
    Leg,
    Side,
    TransferKind,
    TransferStatus,
)
from ledgerd.ledger.domain.requests import (
    CaptureRequest,
    ExpiryRequest,
    LegRequest,
    PostingRequest,
    ReversalRequest,
    TransferRequest,
    VoidRequest,
)
from tests.fakes.ledger_app import LedgerApp, make_ledger_app

T = TypeVar("T")

LEDGER = "L"
USD = Asset("USD", 2)
JPY = Asset("JPY", 0)
ASSETS = (USD, JPY)
# a0..a4 are opened up front (a0 and a3 unconstrained, to fund the others); a5 may be opened
# later; "ghost" never is.
ACCOUNT_IDS = ("a0", "a1", "a2", "a3", "a4", "a5", "ghost")
INITIAL_ASSETS = {"a0": USD, "a1": USD, "a2": USD, "a3": JPY, "a4": JPY}
_BALANCE_FIELDS = ("posted_debits", "posted_credits", "pending_debits", "pending_credits")
# Balances stop at MAX_AMOUNT; 'available', a difference of them, may go down to this.
_INT64_MIN = -(2**63)

# Small amounts, and amounts so close to the 64-bit limit that two of them overflow a balance.
AMOUNTS = st.one_of(*[st.integers(1, 300)] * 5, st.integers(MAX_AMOUNT - 300, MAX_AMOUNT))
FLAGS = st.one_of(
    st.just(AccountFlags()),
    st.builds(
        lambda overdraft: AccountFlags(
            debits_must_not_exceed_credits=True, overdraft_limit=overdraft
        ),
        st.sampled_from([0, 0, 100, MAX_AMOUNT]),
    ),
    st.builds(
        lambda overdraft: AccountFlags(
            credits_must_not_exceed_debits=True, overdraft_limit=overdraft
        ),
        st.sampled_from([0, 50]),
    ),
)
METADATA = st.sampled_from([{}, {}, {"note": "x"}])
TIMEOUTS = st.sampled_from([0, 10, 10, 60])


# -- the independent model --------------------------------------------------------------------


@dataclass
class ModelAccount:
    asset: Asset
    flags: AccountFlags
    status: AccountStatus = AccountStatus.OPEN
    balances: Balances = field(default_factory=Balances)


@dataclass
class ModelTransfer:
    kind: TransferKind
    status: TransferStatus
    legs: tuple[Leg, ...]
    expires_at: datetime | None


@dataclass(frozen=True)
class Reject:
    code: StrEnum


@dataclass(frozen=True)
class Replay:
    transfer_id: str
    status: TransferStatus  # the original's status when the replay is decided


@dataclass(frozen=True)
class Accept:
    key: str
    body: object
    kind: TransferKind
    status: TransferStatus
    legs: tuple[Leg, ...]
    expires_at: datetime | None
    target_id: str | None
    target_status: TransferStatus | None
    balances: dict[str, Balances]


Decision = Reject | Replay | Accept
Move = tuple[str, Side, Layer, int]


@dataclass(frozen=True)
class _Plan:
    kind: TransferKind
    legs: tuple[Leg, ...]
    moves: list[Move]
    expires_at: datetime | None = None
    target_id: str | None = None
    target_status: TransferStatus | None = None
    constrained: bool = True


class _Rejected(Exception):  # noqa: N818 - control flow inside the model, not an error type
    def __init__(self, code: StrEnum) -> None:
        super().__init__(code)
        self.code = code


def _key_and_body(request: PostingRequest) -> tuple[str, object]:
    """What makes two requests "the same", written down independently of ``fingerprint``."""
    metadata = tuple(sorted(request.metadata.items()))
    match request:
        case TransferRequest():
            legs = tuple(
                (leg.debit_account, leg.credit_account, leg.amount, leg.asset)
                for leg in request.legs
            )
            body: object = ("transfer", legs, request.pending, request.timeout_seconds, metadata)
            return request.idempotency_key, body
        case CaptureRequest():
            key = request.idempotency_key or f"capture/{request.pending_id}"
            return key, ("capture", request.pending_id, request.amount, metadata)
        case VoidRequest():
            key = request.idempotency_key or f"void/{request.pending_id}"
            return key, ("void", request.pending_id, metadata)
        case ReversalRequest():
            key = request.idempotency_key or f"reverse/{request.transfer_id}"
            return key, ("reverse", request.transfer_id, metadata)
        case ExpiryRequest():
            return f"expire/{request.pending_id}", ("expire", request.pending_id)


def _malformed(request: PostingRequest) -> bool:
    if isinstance(request, TransferRequest):
        return any(
            leg.debit_account == leg.credit_account or not 1 <= leg.amount <= MAX_AMOUNT
            for leg in request.legs
        )
    if isinstance(request, CaptureRequest) and request.amount is not None:
        return not 1 <= request.amount <= MAX_AMOUNT
    return False


@dataclass
class Model:
    accounts: dict[str, ModelAccount] = field(default_factory=dict)
    transfers: dict[str, ModelTransfer] = field(default_factory=dict)
    keys: dict[str, tuple[str, object]] = field(default_factory=dict)

    def copy(self) -> Model:
        return Model(
            accounts={k: dataclasses.replace(v) for k, v in self.accounts.items()},
            transfers={k: dataclasses.replace(v) for k, v in self.transfers.items()},
            keys=dict(self.keys),
        )

    # -- posting --------------------------------------------------------------------------

    def decide(self, request: PostingRequest, now: datetime) -> Decision:
        if _malformed(request):
            return Reject(ErrorCode.VALIDATION_FAILED)
        key, body = _key_and_body(request)
        if key in self.keys:
            transfer_id, original = self.keys[key]
            if body != original:
                return Reject(LedgerErrorCode.IDEMPOTENCY_CONFLICT)
            return Replay(transfer_id, self.transfers[transfer_id].status)
        try:
            return self._plan(request, now, key, body)
        except _Rejected as rejected:
            return Reject(rejected.code)

    def _account(self, account_id: str) -> ModelAccount:
        account = self.accounts.get(account_id)
        if account is None:
            raise _Rejected(LedgerErrorCode.ACCOUNT_NOT_FOUND)
        return account

    @staticmethod
    def _movable(account: ModelAccount) -> None:
        if account.status is AccountStatus.FROZEN:
            raise _Rejected(LedgerErrorCode.ACCOUNT_FROZEN)
        if account.status is AccountStatus.CLOSED:
            raise _Rejected(LedgerErrorCode.ACCOUNT_CLOSED)

    def _open_hold(self, pending_id: str, now: datetime) -> ModelTransfer:
        target = self.transfers.get(pending_id)
        if target is None:
            raise _Rejected(LedgerErrorCode.TRANSFER_NOT_FOUND)
        if target.status is TransferStatus.EXPIRED:
            raise _Rejected(LedgerErrorCode.PENDING_EXPIRED)
        if target.kind is not TransferKind.PENDING or target.status is not TransferStatus.PENDING:
            raise _Rejected(LedgerErrorCode.TRANSFER_NOT_PENDING)
        if target.expires_at is not None and now >= target.expires_at:
            raise _Rejected(LedgerErrorCode.PENDING_EXPIRED)
        return target

    def _plan(self, request: PostingRequest, now: datetime, key: str, body: object) -> Accept:
        match request:
            case TransferRequest():
                plan = self._plan_transfer(request, now)
            case CaptureRequest():
                plan = self._plan_capture(request, now)
            case VoidRequest():
                target = self._open_hold(request.pending_id, now)
                plan = _Plan(
                    TransferKind.VOID,
                    target.legs,
                    _moves(target.legs, Layer.PENDING, -1),
                    target_id=request.pending_id,
                    target_status=TransferStatus.VOIDED,
                    constrained=False,
                )
            case ExpiryRequest():
                target = self.transfers[request.pending_id]
                assert target.status is TransferStatus.PENDING
                assert target.expires_at is not None
                assert now >= target.expires_at
                plan = _Plan(
                    TransferKind.EXPIRY,
                    target.legs,
                    _moves(target.legs, Layer.PENDING, -1),
                    target_id=request.pending_id,
                    target_status=TransferStatus.EXPIRED,
                    constrained=False,
                )
            case ReversalRequest():
                plan = self._plan_reversal(request)
            case _:
                assert_never(request)
        balances = self._after(plan.moves, constrained=plan.constrained)
        status = {
            TransferKind.PENDING: TransferStatus.PENDING,
        }.get(plan.kind, TransferStatus.POSTED)
        return Accept(
            key,
            body,
            plan.kind,
            status,
            plan.legs,
            plan.expires_at,
            plan.target_id,
            plan.target_status,
            balances,
        )

    def _plan_transfer(self, request: TransferRequest, now: datetime) -> _Plan:
        legs = []
        for leg in request.legs:
            debit = self._account(leg.debit_account)
            credit = self._account(leg.credit_account)
            if credit.asset != debit.asset or leg.asset not in (None, debit.asset):
                raise _Rejected(LedgerErrorCode.ASSET_MISMATCH)
            self._movable(debit)
            self._movable(credit)
            legs.append(Leg(leg.debit_account, leg.credit_account, leg.amount, debit.asset))
        layer = Layer.PENDING if request.pending else Layer.POSTED
        expires_at = None
        if request.pending and request.timeout_seconds:
            expires_at = now + timedelta(seconds=request.timeout_seconds)
        return _Plan(
            TransferKind.PENDING if request.pending else TransferKind.POSTING,
            tuple(legs),
            _moves(legs, layer, 1),
            expires_at=expires_at,
        )

    def _plan_capture(self, request: CaptureRequest, now: datetime) -> _Plan:
        target = self._open_hold(request.pending_id, now)
        if request.amount is None:
            legs = target.legs
        elif len(target.legs) != 1:
            raise _Rejected(ErrorCode.VALIDATION_FAILED)
        elif request.amount > target.legs[0].amount:
            raise _Rejected(LedgerErrorCode.CAPTURE_EXCEEDS_PENDING)
        else:
            legs = (dataclasses.replace(target.legs[0], amount=request.amount),)
        for leg in legs:
            self._movable(self.accounts[leg.debit_account])
            self._movable(self.accounts[leg.credit_account])
        return _Plan(
            TransferKind.CAPTURE,
            legs,
            [*_moves(target.legs, Layer.PENDING, -1), *_moves(legs, Layer.POSTED, 1)],
            target_id=request.pending_id,
            target_status=TransferStatus.CAPTURED,
        )

    def _plan_reversal(self, request: ReversalRequest) -> _Plan:
        target = self.transfers.get(request.transfer_id)
        if target is None:
            raise _Rejected(LedgerErrorCode.TRANSFER_NOT_FOUND)
        if target.status is TransferStatus.REVERSED:
            raise _Rejected(LedgerErrorCode.TRANSFER_ALREADY_REVERSED)
        reversible = {TransferKind.POSTING, TransferKind.CAPTURE, TransferKind.REVERSAL}
        if target.kind not in reversible or target.status is not TransferStatus.POSTED:
            raise _Rejected(LedgerErrorCode.TRANSFER_NOT_REVERSIBLE)
        legs = tuple(
            Leg(leg.credit_account, leg.debit_account, leg.amount, leg.asset) for leg in target.legs
        )
        for leg in legs:
            self._movable(self.accounts[leg.debit_account])
            self._movable(self.accounts[leg.credit_account])
        return _Plan(
            TransferKind.REVERSAL,
            legs,
            _moves(legs, Layer.POSTED, 1),
            target_id=request.transfer_id,
            target_status=TransferStatus.REVERSED,
        )

    def _after(self, moves: list[Move], *, constrained: bool) -> dict[str, Balances]:
        after: dict[str, Balances] = {}  # first-touch order, like the engine's checks
        for account_id, side, layer, amount in moves:
            name = f"{layer.value}_{side.value}s"
            current = after.get(account_id, self.accounts[account_id].balances)
            after[account_id] = dataclasses.replace(
                current, **{name: getattr(current, name) + amount}
            )
        for balances in after.values():
            values = [getattr(balances, name) for name in _BALANCE_FIELDS]
            assert min(values) >= 0, "the model released more than was held"
            if max(values) > MAX_AMOUNT:
                raise _Rejected(LedgerErrorCode.BALANCE_OVERFLOW)
        for account_id, balances in after.items():
            available = _available(self.accounts[account_id].flags, balances)
            if not _INT64_MIN <= available <= MAX_AMOUNT:
                raise _Rejected(LedgerErrorCode.BALANCE_OVERFLOW)
        if constrained:
            for account_id, b in after.items():
                flags = self.accounts[account_id].flags
                all_debits = b.posted_debits + b.pending_debits
                all_credits = b.posted_credits + b.pending_credits
                if flags.debits_must_not_exceed_credits and (
                    all_debits > b.posted_credits + flags.overdraft_limit
                ):
                    raise _Rejected(LedgerErrorCode.INSUFFICIENT_FUNDS)
                if flags.credits_must_not_exceed_debits and (
                    all_credits > b.posted_debits + flags.overdraft_limit
                ):
                    raise _Rejected(LedgerErrorCode.CREDIT_LIMIT_EXCEEDED)
        return after

    def commit(self, accepted: Accept, transfer_id: str) -> None:
        for account_id, balances in accepted.balances.items():
            self.accounts[account_id].balances = balances
        self.transfers[transfer_id] = ModelTransfer(
            accepted.kind, accepted.status, accepted.legs, accepted.expires_at
        )
        self.keys[accepted.key] = (transfer_id, accepted.body)
        if accepted.target_id is not None and accepted.target_status is not None:
            self.transfers[accepted.target_id].status = accepted.target_status

    # -- account status -------------------------------------------------------------------

    def change_status(self, account_id: str, status: AccountStatus) -> StrEnum | None:
        account = self.accounts.get(account_id)
        if account is None:
            return LedgerErrorCode.ACCOUNT_NOT_FOUND
        if account.status is status:
            return None
        if account.status is AccountStatus.CLOSED:
            return LedgerErrorCode.ACCOUNT_CLOSED
        held = account.balances.pending_debits or account.balances.pending_credits
        if status is AccountStatus.CLOSED and held:
            return LedgerErrorCode.ACCOUNT_HAS_PENDING
        account.status = status
        return None

    def due(self, now: datetime) -> list[str]:
        return [
            transfer_id
            for transfer_id, t in self.transfers.items()
            if t.status is TransferStatus.PENDING
            and t.expires_at is not None
            and t.expires_at <= now
        ]


# The engine numbers a transfer before its balance checks, so these failures use up an id.
_DECIDED_AFTER_NUMBERING = frozenset(
    {
        LedgerErrorCode.BALANCE_OVERFLOW,
        LedgerErrorCode.INSUFFICIENT_FUNDS,
        LedgerErrorCode.CREDIT_LIMIT_EXCEEDED,
    }
)


def _describe(decision: Decision) -> str:
    match decision:
        case Reject(code):
            return f"rejected: {code}"
        case Accept(kind=kind):
            return f"accepted: {kind}"
        case Replay():
            return "replayed"


def _available(flags: AccountFlags, b: Balances) -> int:
    """What an account can spend, written out here rather than taken from ``Balances``."""
    if flags.credits_must_not_exceed_debits:  # debit-normal
        return b.posted_debits - b.posted_credits - b.pending_credits
    return b.posted_credits - b.posted_debits - b.pending_debits


def _moves(legs: Sequence[Leg], layer: Layer, sign: int) -> list[Move]:
    moves: list[Move] = []
    for leg in legs:
        moves.append((leg.debit_account, Side.DEBIT, layer, sign * leg.amount))
        moves.append((leg.credit_account, Side.CREDIT, layer, sign * leg.amount))
    return moves


def pay_request(key: str, debit: str, credit: str, amount: int) -> TransferRequest:
    return TransferRequest(key, (LegRequest(debit, credit, amount),))


# -- the state machine ------------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.app: LedgerApp = make_ledger_app()
        self.model = Model()
        self.keys = 0
        self.submitted: list[PostingRequest] = []
        # instant -> balances of every account as the last step at that instant left them
        self.history: dict[datetime, dict[str, Balances]] = {}

    def teardown(self) -> None:
        self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def fresh_key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    @initialize(flags=st.lists(FLAGS, min_size=3, max_size=3))
    def create_ledger(self, flags: list[AccountFlags]) -> None:
        self.run(self.app.create_ledger(CreateLedger(LEDGER, "props")))
        drawn = iter(flags)
        for account_id, asset in INITIAL_ASSETS.items():
            account_flags = AccountFlags() if account_id in {"a0", "a3"} else next(drawn)
            self.run(self.app.open_account(OpenAccount(LEDGER, account_id, asset, account_flags)))
            self.model.accounts[account_id] = ModelAccount(asset, account_flags)

    # -- drawing requests -----------------------------------------------------------------

    def draw_transfer(self, data: st.DataObject, *, pending: bool) -> TransferRequest:
        legs = []
        for _ in range(data.draw(st.integers(1, 3), label="legs")):
            debit, credit = self.draw_pair(data)
            asset = data.draw(st.sampled_from([None, None, None, None, USD, JPY]))
            legs.append(LegRequest(debit, credit, data.draw(AMOUNTS), asset))
        return TransferRequest(
            idempotency_key=self.fresh_key(),
            legs=tuple(legs),
            pending=pending,
            timeout_seconds=data.draw(TIMEOUTS) if pending else 0,
            metadata=data.draw(METADATA),
        )

    def draw_pair(self, data: st.DataObject) -> tuple[str, str]:
        """Mostly two accounts of one asset; sometimes any two ids (unknown, other asset)."""
        by_asset = [
            sorted(i for i, a in self.model.accounts.items() if a.asset == asset)
            for asset in ASSETS
        ]
        choices = [ids for ids in by_asset if len(ids) >= 2]
        if choices and data.draw(st.integers(0, 9), label="cross") > 0:
            pool = data.draw(st.sampled_from(choices))
        else:
            pool = list(ACCOUNT_IDS)
        debit, credit = data.draw(
            st.lists(st.sampled_from(pool), min_size=2, max_size=2, unique=True)
        )
        return debit, credit

    def draw_target(self, data: st.DataObject, kinds: set[TransferKind] | None = None) -> str:
        candidates = sorted(
            transfer_id
            for transfer_id, transfer in self.model.transfers.items()
            if kinds is None or transfer.kind in kinds
        )
        return data.draw(st.sampled_from([*candidates, "t999999"] if candidates else ["t999999"]))

    def draw_key(self, data: st.DataObject) -> str | None:
        return self.fresh_key() if data.draw(st.booleans()) else None

    def draw_settlement(self, data: st.DataObject) -> PostingRequest:
        choice = data.draw(st.sampled_from(["capture", "void", "reverse"]))
        if choice == "reverse":
            return ReversalRequest(self.draw_target(data), self.draw_key(data))
        pending_id = self.draw_target(data, {TransferKind.PENDING})
        if choice == "void":
            return VoidRequest(pending_id, self.draw_key(data))
        hold = self.model.transfers.get(pending_id)
        return CaptureRequest(pending_id, self.draw_amount(data, hold), self.draw_key(data))

    @staticmethod
    def draw_amount(data: st.DataObject, hold: ModelTransfer | None) -> int | None:
        """None (capture it all), or part of the hold, all of it, or a little more."""
        if hold is None or data.draw(st.booleans(), label="capture all"):
            return None
        held = hold.legs[0].amount
        return data.draw(
            st.one_of(st.integers(1, held), st.integers(held, min(held + 2, MAX_AMOUNT)))
        )

    def draw_request(self, data: st.DataObject) -> PostingRequest:
        choice = data.draw(st.sampled_from(["post", "pending", "settle"]))
        if choice == "settle":
            return self.draw_settlement(data)
        return self.draw_transfer(data, pending=choice == "pending")

    # -- submitting and checking ----------------------------------------------------------

    def submit(self, requests: Sequence[PostingRequest], *, atomic: bool = False) -> None:
        uow = self.app.uow
        before, commits = uow.tables.copy(), uow.commits
        issued = self.app.ids.issued
        now = self.app.clock.now()
        results = self.run(self.app.post_transfers(PostTransfers(LEDGER, list(requests), atomic)))
        self.submitted.extend(r for r in requests if not isinstance(r, ExpiryRequest))
        assert len(results) == len(requests)

        work = self.model.copy()
        decisions: list[Decision] = []
        for index, (request, result) in enumerate(zip(requests, results, strict=True)):
            decision = work.decide(request, now)
            note(f"#{index} {request!r}\n   -> model {decision!r}\n   -> ledger {result!r}")
            decisions.append(decision)
            event(_describe(decision))
            if isinstance(decision, Accept) or (
                isinstance(decision, Reject) and decision.code in _DECIDED_AFTER_NUMBERING
            ):
                issued += 1
            if isinstance(decision, Accept):
                # The id the request drew; inside an aborted batch later requests may still
                # have referred to it, so the model needs it even though nothing was written.
                transfer_id = self.app.ids.format(issued)
                if isinstance(result, Ok):
                    assert result.value.transfer.id == transfer_id
                work.commit(decision, transfer_id)
        rejected = any(isinstance(d, Reject) for d in decisions)

        for decision, result in zip(decisions, results, strict=True):
            self.check_result(decision, result, aborted=atomic and rejected)

        wrote = any(isinstance(d, Accept) for d in decisions) and not (atomic and rejected)
        if wrote:
            assert uow.commits == commits + 1
            self.model = work
        else:
            # A rejected request, an aborted batch, a pure replay: nothing may change.
            assert uow.tables == before
            assert uow.commits == commits

    def check_result(self, decision: Decision, result: PostingResult, *, aborted: bool) -> None:
        if isinstance(decision, Reject):
            assert isinstance(result, Err), f"expected {decision.code}, got {result!r}"
            assert result.error.code is decision.code, (result.error, decision.code)
        elif aborted:
            assert isinstance(result, Err)
            assert result.error.code is LedgerErrorCode.BATCH_ABORTED
        elif isinstance(decision, Replay):
            assert isinstance(result, Ok), f"expected a replay, got {result!r}"
            assert result.value.replayed
            assert result.value.transfer.id == decision.transfer_id
            assert result.value.transfer.status is decision.status
        else:
            assert isinstance(result, Ok), f"expected success, got {result!r}"
            assert not result.value.replayed
            transfer = result.value.transfer
            assert (transfer.kind, transfer.legs) == (decision.kind, decision.legs)
            assert transfer.expires_at == decision.expires_at
            assert transfer.target_id == decision.target_id

    # -- rules ----------------------------------------------------------------------------

    @rule(account_id=st.sampled_from(ACCOUNT_IDS[:-1]), asset=st.sampled_from(ASSETS), flags=FLAGS)
    def open_account(self, account_id: str, asset: Asset, flags: AccountFlags) -> None:
        commits = self.app.uow.commits
        existing = self.model.accounts.get(account_id)
        command = OpenAccount(LEDGER, account_id, asset, flags)
        if existing is not None and (existing.asset, existing.flags) != (asset, flags):
            error = self.expect_error(self.app.open_account(command))
            assert error.code is LedgerErrorCode.ACCOUNT_ALREADY_EXISTS
            assert self.app.uow.commits == commits
            return
        opened = self.run(self.app.open_account(command))
        assert (opened.asset, opened.flags) == (asset, flags)
        if existing is None:
            self.model.accounts[account_id] = ModelAccount(asset, flags)
            assert self.app.uow.commits == commits + 1
        else:
            assert opened.balances == existing.balances
            assert self.app.uow.commits == commits

    @rule(data=st.data())
    def post(self, data: st.DataObject) -> None:
        self.submit([self.draw_transfer(data, pending=False)])

    @rule(data=st.data())
    def post_pending(self, data: st.DataObject) -> None:
        self.submit([self.draw_transfer(data, pending=True)])

    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        pending_id = self.draw_target(data, {TransferKind.PENDING})
        hold = self.model.transfers.get(pending_id)
        self.submit([CaptureRequest(pending_id, self.draw_amount(data, hold), self.draw_key(data))])

    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        pending_id = self.draw_target(data, {TransferKind.PENDING})
        self.submit([VoidRequest(pending_id, self.draw_key(data))])

    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        self.submit([ReversalRequest(self.draw_target(data), self.draw_key(data))])

    @rule(data=st.data())
    def post_malformed(self, data: st.DataObject) -> None:
        account_id = data.draw(st.sampled_from(ACCOUNT_IDS))
        leg = data.draw(
            st.sampled_from(
                [LegRequest(account_id, account_id, 1), LegRequest(account_id, "a0-x", 0)]
            )
        )
        self.submit([TransferRequest(self.fresh_key(), (leg,))])

    @rule(data=st.data(), amount=st.integers(1, 1000))
    def fund(self, data: st.DataObject, amount: int) -> None:
        """Pay from an unconstrained account of the asset, so constrained ones get funds."""
        account_id = data.draw(st.sampled_from(sorted(self.model.accounts)))
        bank = "a0" if self.model.accounts[account_id].asset == USD else "a3"
        if bank != account_id:
            self.submit([pay_request(self.fresh_key(), bank, account_id, amount)])

    @rule(seconds=st.sampled_from([1, 9, 10, 10, 50, 61]), sweep=st.booleans())
    def advance_clock(self, seconds: int, sweep: bool) -> None:
        """Time passes; the sweep may run now, or later (holds past due wait for it)."""
        self.app.clock.advance(timedelta(seconds=seconds))
        if sweep:
            self.expire()

    @rule()
    def expire(self) -> None:
        now = self.app.clock.now()
        due = self.model.due(now)
        commits = self.app.uow.commits

        expired = self.run(self.app.expire_pending(ExpirePending()))
        event(f"expired {min(expired, 2)}+" if expired else "expired none")

        assert expired == len(due)
        assert self.app.uow.commits == commits + (1 if due else 0)
        by_target = {
            t.target_id: t.id
            for t in self.app.tables.transfers.values()
            if t.kind is TransferKind.EXPIRY
        }
        for pending_id in due:
            decision = self.model.decide(ExpiryRequest(pending_id), now)
            assert isinstance(decision, Accept)
            self.model.commit(decision, by_target[pending_id])
        before = self.app.tables.copy()
        assert self.run(self.app.expire_pending(ExpirePending())) == 0  # a second sweep: no-op
        assert self.app.tables == before

    @rule(
        account_id=st.sampled_from(ACCOUNT_IDS),
        status=st.sampled_from(
            [AccountStatus.FROZEN, AccountStatus.FROZEN, AccountStatus.OPEN, AccountStatus.CLOSED]
        ),
    )
    def change_status(self, account_id: str, status: AccountStatus) -> None:
        before, commits = self.app.tables.copy(), self.app.uow.commits
        previous = self.model.accounts.get(account_id)
        unchanged = previous is not None and previous.status is status
        expected = self.model.change_status(account_id, status)
        command = ChangeAccountStatus(LEDGER, account_id, status)
        if expected is not None:
            assert self.expect_error(self.app.change_account_status(command)).code is expected
        else:
            assert self.run(self.app.change_account_status(command)).status is status
        if expected is not None or unchanged:
            assert self.app.tables == before
            assert self.app.uow.commits == commits

    @rule(data=st.data())
    def resubmit(self, data: st.DataObject) -> None:
        """Send an earlier request again: a replay if it was accepted, decided anew if not."""
        if not self.submitted:
            return
        self.submit([data.draw(st.sampled_from(self.submitted))])

    @rule(data=st.data())
    def replay_with_another_body(self, data: st.DataObject) -> None:
        accepted = [r for r in self.submitted if _key_and_body(r)[0] in self.model.keys]
        if not accepted:
            return
        original = data.draw(st.sampled_from(accepted))
        changed = dataclasses.replace(original, metadata={"changed": "yes"})
        before = self.app.tables.copy()

        (result,) = self.run(self.app.post_transfers(PostTransfers(LEDGER, [changed])))

        assert isinstance(result, Err)
        assert result.error.code is LedgerErrorCode.IDEMPOTENCY_CONFLICT
        assert result.error.details["transfer_id"] == self.model.keys[_key_and_body(original)[0]][0]
        assert self.app.tables == before

    @rule(data=st.data(), size=st.integers(1, 4), atomic=st.booleans())
    def batch(self, data: st.DataObject, size: int, atomic: bool) -> None:
        requests = [self.draw_request(data) for _ in range(size)]
        resubmit = data.draw(st.booleans(), label="with a resubmission")
        if resubmit and self.submitted:
            requests.insert(
                data.draw(st.integers(0, size)), data.draw(st.sampled_from(self.submitted))
            )
        if data.draw(st.booleans(), label="with an in-batch replay"):
            requests.append(requests[0])
        self.submit(requests, atomic=atomic)

    @rule(data=st.data(), settle=st.sampled_from(["capture", "void", "reverse"]))
    def settle_within_the_batch(self, data: st.DataObject, settle: str) -> None:
        """Settle a transfer created earlier in the same batch (its id is predictable here)."""
        created = self.draw_transfer(data, pending=settle != "reverse")
        new_id = self.app.ids.peek()
        settlement: PostingRequest
        if settle == "capture":
            settlement = CaptureRequest(new_id, None, self.draw_key(data))
        elif settle == "void":
            settlement = VoidRequest(new_id, self.draw_key(data))
        else:
            settlement = ReversalRequest(new_id, self.draw_key(data))
        self.submit([created, settlement], atomic=data.draw(st.booleans(), label="atomic"))

    @rule(data=st.data())
    def check_balance_as_of(self, data: st.DataObject) -> None:
        if not self.history:
            return
        instant = data.draw(st.sampled_from(sorted(self.history)))
        for account_id in self.model.accounts:
            balance = self.run(self.app.queries.get_balance(LEDGER, account_id, as_of=instant))
            assert balance.balances == self.history[instant].get(account_id, Balances())

    def expect_error(self, coroutine: Coroutine[Any, Any, object]) -> LedgerdError:
        try:
            self.run(coroutine)
        except LedgerdError as error:
            return error
        raise AssertionError("expected a LedgerdError")

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def ledger_is_consistent(self) -> None:
        tables = self.app.tables
        accounts = {a.id: a for (ledger, _), a in tables.accounts.items() if ledger == LEDGER}
        transfers = {t.id: t for t in tables.transfers.values()}

        # Per asset, debits equal credits, posted and pending.
        totals: dict[Asset, list[int]] = {}
        for account in accounts.values():
            sums = totals.setdefault(account.asset, [0, 0, 0, 0])
            for index, name in enumerate(_BALANCE_FIELDS):
                sums[index] += getattr(account.balances, name)
        for asset, (posted_d, posted_c, pending_d, pending_c) in totals.items():
            assert posted_d == posted_c, f"{asset}: posted debits {posted_d} != credits {posted_c}"
            assert pending_d == pending_c, f"{asset}: pending {pending_d} != {pending_c}"

        for account in accounts.values():
            # No constrained account beyond its limit.
            assert account.constraint_violation() is None, account
            # What it can spend fits the API's int64, whatever its flags.
            assert account.available == _available(account.flags, account.balances)
            assert _INT64_MIN <= account.available <= MAX_AMOUNT, account
            b, flags = account.balances, account.flags
            if flags.debits_must_not_exceed_credits:
                assert (
                    b.posted_debits + b.pending_debits <= b.posted_credits + flags.overdraft_limit
                )
            if flags.credits_must_not_exceed_debits:
                assert (
                    b.posted_credits + b.pending_credits <= b.posted_debits + flags.overdraft_limit
                )
            # Balances are the fold of the account's entries.
            entries = tables.account_entries(LEDGER, account.id)
            folded = dict.fromkeys(_BALANCE_FIELDS, 0)
            for entry in entries:
                folded[f"{entry.layer.value}_{entry.side.value}s"] += entry.amount
                assert entry.balances_after == Balances(**folded)
            assert Balances(**folded) == account.balances
            assert account.entry_count == len(entries)
            assert [e.account_sequence for e in entries] == list(range(1, len(entries) + 1))

        # The ledger's own verification agrees.
        report = self.run(self.app.verify_ledger(VerifyLedger(LEDGER)))
        assert report.ok, report.problems
        assert report.transfers == len(transfers) == tables.heads[LEDGER].sequence

        # And the independent model agrees with all of it.
        assert set(accounts) == set(self.model.accounts)
        for account_id, expected in self.model.accounts.items():
            stored = accounts[account_id]
            assert stored.balances == expected.balances, (account_id, stored, expected)
            assert (stored.status, stored.asset, stored.flags) == (
                expected.status,
                expected.asset,
                expected.flags,
            )
        assert set(transfers) == set(self.model.transfers)
        for transfer_id, model_transfer in self.model.transfers.items():
            stored_transfer = transfers[transfer_id]
            assert stored_transfer.status is model_transfer.status, transfer_id
            assert stored_transfer.kind is model_transfer.kind
            assert stored_transfer.legs == model_transfer.legs

        self.history[self.app.clock.now()] = {a.id: a.balances for a in accounts.values()}


LedgerMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("LEDGERD_STATEFUL_EXAMPLES", "200")),
    stateful_step_count=int(os.environ.get("LEDGERD_STATEFUL_STEPS", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerProperties = LedgerMachine.TestCase
