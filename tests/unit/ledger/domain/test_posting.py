from datetime import timedelta

import pytest

from ledgerd.kernel.errors import ErrorCode
from ledgerd.kernel.money import MAX_AMOUNT, Asset
from ledgerd.ledger.domain.chain import chained_hash
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import (
    GENESIS_HASH,
    AccountFlags,
    AccountStatus,
    Balances,
    Entry,
    Layer,
    Leg,
    Side,
    TransferKind,
    TransferStatus,
)
from ledgerd.ledger.domain.posting import PostingSession, PostingSnapshot
from ledgerd.ledger.domain.requests import (
    CaptureRequest,
    ExpiryRequest,
    LegRequest,
    PostingRequest,
    ReversalRequest,
    TransferRequest,
    VoidRequest,
)
from tests.fakes.clock import START
from tests.unit.ledger.domain.book import (
    EUR,
    FUNDED,
    LEDGER,
    USD,
    Book,
    entries_of,
    funded,
    make_account,
    pay,
)

# -- posting ------------------------------------------------------------------------------


def test_posting_moves_posted_balances_and_writes_two_entries_per_leg() -> None:
    book = Book(funded("alice", 100), make_account("bob"))

    transfer = book.post(pay("k1", ("alice", "bob", 30)))

    assert book.balances("alice") == Balances(posted_debits=30, posted_credits=100)
    assert book.balances("bob") == Balances(posted_credits=30)
    assert transfer.kind is TransferKind.POSTING
    assert transfer.status is TransferStatus.POSTED
    assert transfer.legs == (Leg("alice", "bob", 30, USD),)
    assert (transfer.ledger_id, transfer.idempotency_key) == (LEDGER, "k1")
    assert transfer.created_at == START
    assert transfer.expires_at is None
    assert transfer.target_id is None
    assert book.session.entries == [
        Entry(LEDGER, "alice", 1, transfer.id, 1, 0, Side.DEBIT, Layer.POSTED, 30,
              Balances(posted_debits=30, posted_credits=100), START),
        Entry(LEDGER, "bob", 1, transfer.id, 1, 0, Side.CREDIT, Layer.POSTED, 30,
              Balances(posted_credits=30), START),
    ]  # fmt: skip
    assert [(a.id, a.entry_count, v) for a, v in book.session.changed_accounts()] == [
        ("alice", 1, 0),
        ("bob", 1, 0),
    ]


def test_funds_limit_is_exact() -> None:
    book = Book(funded("alice", 100), make_account("bob"))

    book.post(pay("k1", ("alice", "bob", 100)))

    assert book.fail(pay("k2", ("alice", "bob", 1))).code is LedgerErrorCode.INSUFFICIENT_FUNDS
    assert book.account("alice").available == 0


def test_overdraft_limit_extends_the_funds() -> None:
    flags = AccountFlags(debits_must_not_exceed_credits=True, overdraft_limit=50)
    book = Book(funded("alice", 100, flags=flags), make_account("bob"))

    book.post(pay("k1", ("alice", "bob", 150)))

    error = book.fail(pay("k2", ("alice", "bob", 1)))
    assert error.code is LedgerErrorCode.INSUFFICIENT_FUNDS
    assert error.details == {"account": "alice"}
    assert book.account("alice").available == -50


def test_credit_limit_on_a_debit_normal_account() -> None:
    capped = AccountFlags(credits_must_not_exceed_debits=True, overdraft_limit=10)
    book = Book(make_account("line", flags=capped), make_account("bob"))

    book.post(pay("k1", ("bob", "line", 10)))

    assert book.fail(pay("k2", ("bob", "line", 1))).code is LedgerErrorCode.CREDIT_LIMIT_EXCEEDED
    book.post(pay("k3", ("line", "bob", 5)))
    book.post(pay("k4", ("bob", "line", 5)))


def test_overflow_of_a_balance_is_rejected() -> None:
    book = Book(make_account("a"), make_account("b"))

    book.post(pay("k1", ("a", "b", MAX_AMOUNT)))

    error = book.fail(pay("k2", ("a", "b", 1)))
    assert error.code is LedgerErrorCode.BALANCE_OVERFLOW
    assert error.details == {"balance": "posted_debits"}


def test_overflow_across_legs_of_one_transfer() -> None:
    book = Book(make_account("a"), make_account("b"), make_account("c"))

    error = book.fail(pay("k1", ("a", "b", MAX_AMOUNT), ("c", "b", 1)))

    assert error.code is LedgerErrorCode.BALANCE_OVERFLOW
    assert error.details == {"balance": "posted_credits"}


# An unconstrained account whose debits, posted and on hold, leave available at -(2**63-1):
# each balance far below its cap, their difference at the edge of int64.
DEEP = Balances(posted_debits=2**62, pending_debits=2**62 - 1)


@pytest.mark.parametrize("pending", [False, True], ids=["posting", "hold"])
def test_available_may_reach_but_not_pass_minus_2_to_the_63(*, pending: bool) -> None:
    book = Book(make_account("a", balances=DEEP), make_account("b"), make_account("c"))
    book.post(pay("k1", ("a", "b", 1), pending=True))
    assert book.account("a").available == -(2**63)
    state = book.state()

    error = book.fail(pay("k2", ("a", "c", 1), pending=pending))

    assert error.code is LedgerErrorCode.BALANCE_OVERFLOW
    assert error.details == {"account": "a", "balance": "available"}
    assert str(-(2**63)) in error.message
    assert book.state() == state
    # What brings it back in is fine, and so is spending again what came back in.
    book.post(pay("k3", ("c", "a", 5)))
    book.post(pay("k4", ("a", "c", 5), pending=pending))
    assert book.account("a").available == -(2**63)


def test_available_is_checked_on_the_net_result_of_all_legs() -> None:
    book = Book(make_account("a", balances=DEEP), make_account("b"))
    assert book.fail(pay("alone", ("a", "b", 10))).code is LedgerErrorCode.BALANCE_OVERFLOW

    book.post(pay("k1", ("a", "b", 10), ("b", "a", 10)))

    assert book.account("a").available == -MAX_AMOUNT
    error = book.fail(pay("k2", ("a", "b", 3), ("b", "a", 1)))
    assert (error.code, error.details["account"]) == (LedgerErrorCode.BALANCE_OVERFLOW, "a")


def test_a_reversal_may_not_push_available_out_of_range() -> None:
    book = Book(make_account("a", balances=DEEP), make_account("b"))
    refund = book.post(pay("k1", ("b", "a", 5)))
    book.post(pay("k2", ("a", "b", 5)))  # available back at -(2**63-1)

    error = book.fail(ReversalRequest(refund.id))  # would debit a 5 more

    assert error.code is LedgerErrorCode.BALANCE_OVERFLOW
    assert error.details == {"account": "a", "balance": "available"}


def test_releases_and_captures_never_lower_available() -> None:
    book = Book(make_account("a", balances=DEEP), make_account("b"))
    hold = book.post(pay("k1", ("a", "b", 1), pending=True))  # available exactly -2**63
    book.post(CaptureRequest(hold.id))
    assert book.account("a").available == -(2**63)
    book.post(pay("k2", ("b", "a", 1)))
    hold = book.post(pay("k3", ("a", "b", 1), pending=True))
    void = book.post(VoidRequest(hold.id))

    assert void.sequence == 5
    assert book.account("a").available == -(2**63) + 1


def test_constraint_is_checked_on_the_net_result_of_all_legs() -> None:
    book = Book(funded("alice", 0), make_account("bob"), make_account("carol"))
    # Alone, the first leg would overdraw alice; the second leg funds her in the same transfer.
    assert book.fail(pay("alone", ("alice", "bob", 10))).code is LedgerErrorCode.INSUFFICIENT_FUNDS

    transfer = book.post(pay("k1", ("alice", "bob", 10), ("carol", "alice", 10)))

    assert book.balances("alice") == Balances(posted_debits=10, posted_credits=10)
    assert [(e.account_id, e.leg_index, e.side) for e in book.session.entries] == [
        ("alice", 0, Side.DEBIT),
        ("bob", 0, Side.CREDIT),
        ("carol", 1, Side.DEBIT),
        ("alice", 1, Side.CREDIT),
    ]
    assert [e.account_sequence for e in entries_of(book.session.entries, "alice")] == [1, 2]
    assert transfer.sequence == 1


def test_legs_that_are_each_fine_can_overdraw_together() -> None:
    book = Book(funded("alice", 15), make_account("bob"), make_account("carol"))

    error = book.fail(pay("k1", ("alice", "bob", 10), ("alice", "carol", 10)))

    assert error.code is LedgerErrorCode.INSUFFICIENT_FUNDS


def test_entries_carry_running_balances_from_the_stored_entry_count() -> None:
    alice_with_history = make_account(
        "alice", balances=Balances(posted_credits=100), entry_count=7, flags=FUNDED
    )
    book = Book(alice_with_history, make_account("bob"))

    book.post(pay("k1", ("alice", "bob", 10)))
    book.post(pay("k2", ("alice", "bob", 20), ("alice", "bob", 5)))

    alice = entries_of(book.session.entries, "alice")
    assert [e.account_sequence for e in alice] == [8, 9, 10]
    assert [e.balances_after.posted_debits for e in alice] == [10, 30, 35]
    assert {e.balances_after.posted_credits for e in alice} == {100}
    assert [e.transfer_sequence for e in alice] == [1, 2, 2]
    assert alice[-1].balances_after == book.balances("alice")
    assert book.account("alice").entry_count == 10


# -- hash chain ---------------------------------------------------------------------------


def test_transfers_are_chained() -> None:
    book = Book(funded("alice", 100), make_account("bob"))

    first = book.post(pay("k1", ("alice", "bob", 1)))
    second = book.post(pay("k2", ("alice", "bob", 2), pending=True))
    book.later(timedelta(seconds=5))
    third = book.post(VoidRequest(second.id))

    assert [t.sequence for t in (first, second, third)] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    for transfer in (first, second, third):
        assert transfer.hash == chained_hash(transfer, transfer.prev_hash)
    assert len({first.hash, second.hash, third.hash}) == 3
    assert (book.session.head.sequence, book.session.head.hash) == (3, third.hash)
    assert third.created_at == START + timedelta(seconds=5)


def test_a_session_starts_from_the_stored_head() -> None:
    book = Book(funded("alice", 100), make_account("bob"))
    first = book.post(pay("k1", ("alice", "bob", 1)))
    book.later()

    second = book.post(pay("k2", ("alice", "bob", 1)))

    assert (second.sequence, second.prev_hash) == (2, first.hash)
    assert book.session.new_transfers == [second]


# -- pending, capture, void, expiry -------------------------------------------------------


def test_pending_holds_value_without_posting_it() -> None:
    book = Book(funded("alice", 100), make_account("bob"))

    hold = book.post(pay("h", ("alice", "bob", 60), pending=True, timeout=30))

    assert hold.kind is TransferKind.PENDING
    assert hold.status is TransferStatus.PENDING
    assert hold.expires_at == START + timedelta(seconds=30)
    assert book.balances("alice") == Balances(posted_credits=100, pending_debits=60)
    assert book.balances("bob") == Balances(pending_credits=60)
    assert book.account("alice").available == 40
    assert book.fail(pay("k", ("alice", "bob", 41))).code is LedgerErrorCode.INSUFFICIENT_FUNDS


def test_a_hold_without_timeout_never_expires() -> None:
    book = Book(funded("alice", 100), make_account("bob"))

    hold = book.post(pay("h", ("alice", "bob", 60), pending=True))
    book.later(timedelta(days=3650))

    assert hold.expires_at is None
    assert book.fail(ExpiryRequest(hold.id)).code is ErrorCode.VALIDATION_FAILED
    assert book.post(CaptureRequest(hold.id)).kind is TransferKind.CAPTURE


def _held(timeout: int = 0) -> tuple[Book, str]:
    book = Book(funded("alice", 100), make_account("bob"), make_account("carol"))
    hold = book.post(pay("h", ("alice", "bob", 60), pending=True, timeout=timeout))
    book.later(timedelta(seconds=1))
    return book, hold.id


def test_full_capture() -> None:
    book, hold_id = _held()

    capture = book.post(CaptureRequest(hold_id))

    assert capture.kind is TransferKind.CAPTURE
    assert capture.status is TransferStatus.POSTED
    assert capture.target_id == hold_id
    assert capture.idempotency_key == f"capture/{hold_id}"
    assert capture.legs == (Leg("alice", "bob", 60, USD),)
    assert book.balances("alice") == Balances(posted_debits=60, posted_credits=100)
    assert book.balances("bob") == Balances(posted_credits=60)
    assert book.transfer(hold_id).status is TransferStatus.CAPTURED
    assert [(t.id, s) for t, s in book.session.status_changes()] == [
        (hold_id, TransferStatus.CAPTURED)
    ]


def test_partial_capture_releases_the_rest() -> None:
    book, hold_id = _held()

    capture = book.post(CaptureRequest(hold_id, amount=25))

    assert capture.legs == (Leg("alice", "bob", 25, USD),)
    assert book.balances("alice") == Balances(posted_debits=25, posted_credits=100)
    assert book.balances("bob") == Balances(posted_credits=25)
    assert [(e.account_id, e.layer, e.amount) for e in book.session.entries] == [
        ("alice", Layer.PENDING, -60),
        ("bob", Layer.PENDING, -60),
        ("alice", Layer.POSTED, 25),
        ("bob", Layer.POSTED, 25),
    ]
    assert book.transfer(hold_id).status is TransferStatus.CAPTURED
    assert (
        book.fail(CaptureRequest(hold_id, 1, "again")).code is LedgerErrorCode.TRANSFER_NOT_PENDING
    )


def test_capture_of_exactly_the_hold_is_allowed() -> None:
    book, hold_id = _held()

    assert book.post(CaptureRequest(hold_id, amount=60)).legs[0].amount == 60


def test_capture_exceeding_the_hold() -> None:
    book, hold_id = _held()

    error = book.fail(CaptureRequest(hold_id, amount=61))

    assert error.code is LedgerErrorCode.CAPTURE_EXCEEDS_PENDING
    assert book.transfer(hold_id).status is TransferStatus.PENDING


def test_partial_capture_of_a_multi_leg_hold_is_refused_but_full_capture_works() -> None:
    book = Book(funded("alice", 100), make_account("bob"), make_account("carol"))
    hold = book.post(pay("h", ("alice", "bob", 10), ("alice", "carol", 20), pending=True))

    error = book.fail(CaptureRequest(hold.id, amount=5))

    assert error.code is ErrorCode.VALIDATION_FAILED
    assert error.details == {"field": "amount"}
    book.post(CaptureRequest(hold.id))
    assert book.balances("alice") == Balances(posted_debits=30, posted_credits=100)
    assert book.balances("carol") == Balances(posted_credits=20)


def test_void_releases_the_hold() -> None:
    book, hold_id = _held()

    void = book.post(VoidRequest(hold_id))

    assert void.kind is TransferKind.VOID
    assert void.target_id == hold_id
    assert void.idempotency_key == f"void/{hold_id}"
    assert book.balances("alice") == Balances(posted_credits=100)
    assert book.balances("bob") == Balances()
    assert book.transfer(hold_id).status is TransferStatus.VOIDED


def test_capture_of_a_voided_hold() -> None:
    book, hold_id = _held()
    book.post(VoidRequest(hold_id))

    error = book.fail(CaptureRequest(hold_id))

    assert error.code is LedgerErrorCode.TRANSFER_NOT_PENDING
    assert error.details == {"transfer": hold_id, "status": "voided"}


def test_void_of_a_captured_hold_and_capture_of_a_posting() -> None:
    book, hold_id = _held()
    capture = book.post(CaptureRequest(hold_id))

    assert book.fail(VoidRequest(hold_id)).code is LedgerErrorCode.TRANSFER_NOT_PENDING
    assert book.fail(CaptureRequest(capture.id)).code is LedgerErrorCode.TRANSFER_NOT_PENDING
    assert book.fail(VoidRequest("missing")).code is LedgerErrorCode.TRANSFER_NOT_FOUND


def test_expiry_after_the_deadline() -> None:
    book, hold_id = _held(timeout=60)
    book.later(timedelta(seconds=59))  # exactly at the deadline

    expiry = book.post(ExpiryRequest(hold_id))

    assert expiry.kind is TransferKind.EXPIRY
    assert expiry.idempotency_key == f"expire/{hold_id}"
    assert book.transfer(hold_id).status is TransferStatus.EXPIRED
    assert book.balances("alice") == Balances(posted_credits=100)
    assert book.balances("bob") == Balances()


def test_expiry_before_the_deadline_is_refused() -> None:
    book, hold_id = _held(timeout=60)
    book.later(timedelta(seconds=58))  # one second before it

    error = book.fail(ExpiryRequest(hold_id))

    assert error.code is ErrorCode.VALIDATION_FAILED
    assert book.transfer(hold_id).status is TransferStatus.PENDING


def test_expiry_of_a_settled_hold() -> None:
    book, hold_id = _held(timeout=60)
    book.post(VoidRequest(hold_id))
    book.later(timedelta(hours=1))

    assert book.fail(ExpiryRequest(hold_id)).code is LedgerErrorCode.TRANSFER_NOT_PENDING


@pytest.mark.parametrize(
    "request_for",
    [CaptureRequest, VoidRequest, lambda hold_id: CaptureRequest(hold_id, amount=1)],
)
def test_capture_or_void_once_the_timeout_passed(
    request_for: type[CaptureRequest] | type[VoidRequest],
) -> None:
    book, hold_id = _held(timeout=60)
    book.later(timedelta(seconds=59))

    error = book.fail(request_for(hold_id))

    assert error.code is LedgerErrorCode.PENDING_EXPIRED
    assert error.details == {"transfer": hold_id}


def test_capture_after_the_sweep_expired_the_hold() -> None:
    book, hold_id = _held(timeout=60)
    book.later(timedelta(seconds=60))
    book.post(ExpiryRequest(hold_id))

    assert book.fail(CaptureRequest(hold_id)).code is LedgerErrorCode.PENDING_EXPIRED
    assert book.fail(VoidRequest(hold_id)).code is LedgerErrorCode.PENDING_EXPIRED


# -- reversal -----------------------------------------------------------------------------


def test_reversal_posts_the_legs_back() -> None:
    book = Book(funded("alice", 100), make_account("bob"), make_account("carol"))
    original = book.post(pay("k1", ("alice", "bob", 30), ("alice", "carol", 5)))

    reversal = book.post(ReversalRequest(original.id))

    assert reversal.kind is TransferKind.REVERSAL
    assert reversal.target_id == original.id
    assert reversal.idempotency_key == f"reverse/{original.id}"
    assert reversal.legs == (Leg("bob", "alice", 30, USD), Leg("carol", "alice", 5, USD))
    assert book.balances("alice") == Balances(posted_debits=35, posted_credits=135)
    assert book.balances("bob") == Balances(posted_debits=30, posted_credits=30)
    assert book.account("alice").available == 100
    assert book.transfer(original.id).status is TransferStatus.REVERSED


def test_double_reversal() -> None:
    book = Book(funded("alice", 100), make_account("bob"))
    original = book.post(pay("k1", ("alice", "bob", 30)))
    first = book.post(ReversalRequest(original.id))

    # The same request again is a replay of the first reversal ...
    replay = book.replay(ReversalRequest(original.id))
    assert (replay.transfer.id, replay.replayed) == (first.id, True)
    # ... another one is refused.
    error = book.fail(ReversalRequest(original.id, idempotency_key="second"))
    assert error.code is LedgerErrorCode.TRANSFER_ALREADY_REVERSED
    assert error.details == {"transfer": original.id}


def test_a_reversal_and_a_capture_can_be_reversed() -> None:
    book, hold_id = _held()
    capture = book.post(CaptureRequest(hold_id))

    undo_capture = book.post(ReversalRequest(capture.id))
    redo = book.post(ReversalRequest(undo_capture.id))

    assert book.transfer(capture.id).status is TransferStatus.REVERSED
    assert book.transfer(undo_capture.id).status is TransferStatus.REVERSED
    assert redo.legs == capture.legs
    assert book.balances("bob") == Balances(posted_debits=60, posted_credits=120)


@pytest.mark.parametrize("settle", [None, VoidRequest, CaptureRequest])
def test_holds_and_their_releases_are_not_reversible(
    settle: type[VoidRequest] | type[CaptureRequest] | None,
) -> None:
    book, hold_id = _held()
    targets = [hold_id]
    if settle is not None:
        settled = book.post(settle(hold_id))
        if settle is VoidRequest:
            targets.append(settled.id)

    for target in targets:
        error = book.fail(ReversalRequest(target))
        assert error.code is LedgerErrorCode.TRANSFER_NOT_REVERSIBLE
        assert error.details["transfer"] == target


def test_reversal_is_constrained_like_a_posting() -> None:
    book = Book(funded("alice", 100), funded("bob", 0), make_account("carol"))
    original = book.post(pay("k1", ("alice", "bob", 30)))
    book.post(pay("k2", ("bob", "carol", 30)))  # bob spends what he was paid

    error = book.fail(ReversalRequest(original.id))

    assert error.code is LedgerErrorCode.INSUFFICIENT_FUNDS
    assert error.details == {"account": "bob"}
    assert book.transfer(original.id).status is TransferStatus.POSTED


def test_reversal_of_an_unknown_transfer() -> None:
    book = Book(make_account("a"))

    assert book.fail(ReversalRequest("nope")).code is LedgerErrorCode.TRANSFER_NOT_FOUND


# -- account status -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (AccountStatus.FROZEN, LedgerErrorCode.ACCOUNT_FROZEN),
        (AccountStatus.CLOSED, LedgerErrorCode.ACCOUNT_CLOSED),
    ],
)
@pytest.mark.parametrize("frozen_side", ["debit", "credit"])
def test_no_new_movements_on_frozen_or_closed_accounts(
    status: AccountStatus, code: ErrorCode, frozen_side: str
) -> None:
    book = Book(make_account("open"), make_account("stuck", status=status))
    legs = ("stuck", "open", 1) if frozen_side == "debit" else ("open", "stuck", 1)

    error = book.fail(pay("k1", legs))

    assert error.code is code
    assert error.details == {"account": "stuck"}


def _freeze(book: Book, account_id: str) -> None:
    """What ChangeAccountStatus does between two posting sessions."""
    frozen = book.account(account_id).with_status(AccountStatus.FROZEN)
    book.later()
    book.snapshot = PostingSnapshot(
        head=book.snapshot.head,
        accounts={**book.snapshot.accounts, account_id: frozen},
        transfers=book.snapshot.transfers,
    )
    book.session = PostingSession(book.snapshot, now=book.now, new_id=book.ids)


def test_frozen_account_may_release_holds_but_not_capture_them() -> None:
    book, hold_id = _held(timeout=60)
    second = book.post(pay("h2", ("alice", "bob", 10), pending=True))
    _freeze(book, "bob")

    assert book.fail(CaptureRequest(hold_id)).code is LedgerErrorCode.ACCOUNT_FROZEN
    book.post(VoidRequest(hold_id))
    book.later(timedelta(hours=1))
    assert book.balances("bob") == Balances(pending_credits=10)
    assert book.account("bob").status is AccountStatus.FROZEN
    assert book.fail(ReversalRequest(second.id)).code is LedgerErrorCode.TRANSFER_NOT_REVERSIBLE


def test_expiry_on_a_frozen_account() -> None:
    book, hold_id = _held(timeout=60)
    _freeze(book, "alice")
    book.later(timedelta(minutes=5))

    book.post(ExpiryRequest(hold_id))

    assert book.balances("alice") == Balances(posted_credits=100)


def test_reversal_touching_a_frozen_account() -> None:
    book = Book(funded("alice", 100), make_account("bob"))
    original = book.post(pay("k1", ("alice", "bob", 30)))
    _freeze(book, "alice")

    assert book.fail(ReversalRequest(original.id)).code is LedgerErrorCode.ACCOUNT_FROZEN


# -- assets and accounts ------------------------------------------------------------------


def test_accounts_of_different_assets() -> None:
    book = Book(make_account("usd"), make_account("eur", asset=EUR))

    error = book.fail(pay("k1", ("usd", "eur", 1)))

    assert error.code is LedgerErrorCode.ASSET_MISMATCH
    assert error.details == {"leg": "0"}


def test_explicit_leg_asset_must_match() -> None:
    book = Book(make_account("a"), make_account("b"))

    error = book.fail(pay("k1", ("a", "b", 1), asset=EUR))
    transfer = book.post(pay("k2", ("a", "b", 1), asset=USD))

    assert error.code is LedgerErrorCode.ASSET_MISMATCH
    assert transfer.legs[0].asset == USD


def test_asset_mismatch_in_a_later_leg() -> None:
    book = Book(
        make_account("a"),
        make_account("b"),
        make_account("e1", asset=EUR),
        make_account("e2", asset=EUR),
    )

    error = book.fail(pay("k1", ("a", "b", 1), ("e1", "e2", 1), ("e1", "a", 1)))

    assert error.code is LedgerErrorCode.ASSET_MISMATCH
    assert error.details == {"leg": "2"}


@pytest.mark.parametrize(("debit", "credit"), [("ghost", "a"), ("a", "ghost")])
def test_unknown_account(debit: str, credit: str) -> None:
    book = Book(make_account("a"))

    error = book.fail(pay("k1", (debit, credit, 1)))

    assert error.code is LedgerErrorCode.ACCOUNT_NOT_FOUND
    assert error.details == {"account": "ghost"}


# -- idempotency --------------------------------------------------------------------------


def test_replay_returns_the_original_transfer() -> None:
    book = Book(funded("alice", 100), make_account("bob"))
    request = pay("k1", ("alice", "bob", 30))
    original = book.post(request)
    state = book.state()

    replay = book.replay(request)

    assert replay.replayed
    assert replay.transfer == original
    assert book.state() == state
    assert book.balances("alice").posted_debits == 30


def test_replay_in_a_later_session_finds_the_key_in_the_snapshot() -> None:
    book = Book(funded("alice", 100), make_account("bob"))
    request = pay("k1", ("alice", "bob", 30))
    original = book.post(request)
    book.later(timedelta(minutes=1))

    replay = book.replay(request)

    assert (replay.transfer.id, replay.replayed) == (original.id, True)
    assert book.session.new_transfers == []


def test_replay_shows_the_current_status() -> None:
    book, hold_id = _held()
    book.post(CaptureRequest(hold_id))

    replay = book.replay(pay("h", ("alice", "bob", 60), pending=True))

    assert replay.replayed
    assert replay.transfer.id == hold_id
    assert replay.transfer.status is TransferStatus.CAPTURED


@pytest.mark.parametrize(
    "changed",
    [
        pay("k1", ("alice", "bob", 31)),
        pay("k1", ("bob", "alice", 30)),
        pay("k1", ("alice", "bob", 30), pending=True),
        pay("k1", ("alice", "bob", 30), asset=USD),
        TransferRequest("k1", (LegRequest("alice", "bob", 30),), metadata={"a": "b"}),
        VoidRequest("t000001", idempotency_key="k1"),
    ],
)
def test_same_key_with_another_body_conflicts(changed: PostingRequest) -> None:
    book = Book(funded("alice", 100), make_account("bob"))
    original = book.post(pay("k1", ("alice", "bob", 30)))
    state = book.state()

    error = book.fail(changed)

    assert error.code is LedgerErrorCode.IDEMPOTENCY_CONFLICT
    assert error.details == {"idempotency_key": "k1", "transfer_id": original.id}
    assert book.state() == state


def test_derived_keys_make_settlements_idempotent() -> None:
    book, hold_id = _held()
    capture = book.post(CaptureRequest(hold_id, amount=10))

    replay = book.replay(CaptureRequest(hold_id, amount=10))
    conflict = book.fail(CaptureRequest(hold_id, amount=11))
    not_pending = book.fail(VoidRequest(hold_id))

    assert (replay.transfer.id, replay.replayed) == (capture.id, True)
    assert conflict.code is LedgerErrorCode.IDEMPOTENCY_CONFLICT
    assert not_pending.code is LedgerErrorCode.TRANSFER_NOT_PENDING


def test_replay_within_one_batch() -> None:
    book = Book(funded("alice", 100), make_account("bob"))
    request = pay("k1", ("alice", "bob", 30))

    first = book.session.post(request)
    second = book.session.post(request)

    assert (first.replayed, second.replayed) == (False, True)
    assert second.transfer == first.transfer
    assert len(book.session.new_transfers) == 1
    assert len(book.session.entries) == 2


def test_a_failed_request_does_not_claim_its_key() -> None:
    book = Book(funded("alice", 10), make_account("bob"))

    assert book.fail(pay("k1", ("alice", "bob", 30))).code is LedgerErrorCode.INSUFFICIENT_FUNDS
    transfer = book.post(pay("k1", ("alice", "bob", 5)))

    assert transfer.idempotency_key == "k1"


# -- validation and failure atomicity -----------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        pay("k1", ("a", "a", 1)),
        pay("k1", ("a", "b", 0)),
        pay("k1", ("a", "b", MAX_AMOUNT + 1)),
        pay("k1"),
        pay("k1", *[("a", "b", 1)] * 65),
        pay("bad key", ("a", "b", 1)),
        pay("k1", ("a", "b", 1), timeout=5),
        pay("k1", ("a", "b", 1), pending=True, timeout=-1),
        pay("k1", ("a", "b", 1), pending=True, timeout=10 * 366 * 24 * 3600 + 1),
        CaptureRequest("t1", amount=0),
        CaptureRequest("t1", idempotency_key="has/slash"),
        VoidRequest("bad id"),
        ReversalRequest("t1", metadata={"k": 1}),  # type: ignore[dict-item]
    ],
)
def test_malformed_requests(request_: PostingRequest) -> None:
    book = Book(make_account("a"), make_account("b"))

    assert book.fail(request_).code is ErrorCode.VALIDATION_FAILED


def _busy_book() -> Book:
    book = Book(
        funded("alice", 100),
        make_account("bob"),
        make_account("whale", balances=Balances(posted_credits=MAX_AMOUNT)),
        make_account("drained", balances=Balances(posted_debits=MAX_AMOUNT)),
        make_account("euro", asset=EUR),
        make_account("frozen", status=AccountStatus.FROZEN),
        make_account("closed", status=AccountStatus.CLOSED),
        make_account("line", flags=AccountFlags(credits_must_not_exceed_debits=True)),
    )
    book.post(pay("hold", ("alice", "bob", 50), pending=True, timeout=60))  # t000001
    book.post(pay("paid", ("alice", "bob", 10)))  # t000002
    return book


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (pay("x", ("alice", "bob", 41)), LedgerErrorCode.INSUFFICIENT_FUNDS),
        (pay("x", ("bob", "alice", 5), ("alice", "bob", 46)), LedgerErrorCode.INSUFFICIENT_FUNDS),
        (pay("x", ("alice", "bob", 1), ("bob", "whale", 1)), LedgerErrorCode.BALANCE_OVERFLOW),
        (
            pay("x", ("alice", "bob", 1), ("drained", "bob", 2), pending=True),
            LedgerErrorCode.BALANCE_OVERFLOW,
        ),
        (pay("x", ("alice", "bob", 1), ("bob", "euro", 1)), LedgerErrorCode.ASSET_MISMATCH),
        (pay("x", ("alice", "bob", 1), ("bob", "ghost", 1)), LedgerErrorCode.ACCOUNT_NOT_FOUND),
        (pay("x", ("alice", "bob", 1), ("bob", "frozen", 1)), LedgerErrorCode.ACCOUNT_FROZEN),
        (pay("x", ("closed", "bob", 1)), LedgerErrorCode.ACCOUNT_CLOSED),
        (pay("x", ("alice", "bob", 1), ("bob", "line", 1)), LedgerErrorCode.CREDIT_LIMIT_EXCEEDED),
        (pay("hold", ("alice", "bob", 51), pending=True), LedgerErrorCode.IDEMPOTENCY_CONFLICT),
        (CaptureRequest("t000001", amount=51), LedgerErrorCode.CAPTURE_EXCEEDS_PENDING),
        (CaptureRequest("t000002"), LedgerErrorCode.TRANSFER_NOT_PENDING),
        (CaptureRequest("t999999"), LedgerErrorCode.TRANSFER_NOT_FOUND),
        (ReversalRequest("t000001"), LedgerErrorCode.TRANSFER_NOT_REVERSIBLE),
        (ExpiryRequest("t000001"), ErrorCode.VALIDATION_FAILED),
        (pay("x", ("alice", "alice", 1)), ErrorCode.VALIDATION_FAILED),
    ],
)
def test_a_failing_request_leaves_the_session_unchanged(
    request_: PostingRequest, code: ErrorCode
) -> None:
    book = _busy_book()
    head = book.session.head
    state = book.state()
    accounts = {a: book.account(a) for a in book.snapshot.accounts}
    transfers = book.transfers()

    assert book.fail(request_).code is code

    assert book.state() == state
    assert {a: book.account(a) for a in book.snapshot.accounts} == accounts
    assert book.transfers() == transfers
    # ... and the session goes on as if the failure never happened.
    follow_up = book.post(pay("after", ("alice", "bob", 1)))
    assert follow_up.sequence == 3
    assert follow_up.prev_hash == head.hash


def test_the_posted_amount_is_minor_units_whatever_the_scale() -> None:
    jpy = Asset("JPY", 0)
    book = Book(make_account("a", asset=jpy), make_account("b", asset=jpy))

    transfer = book.post(pay("k1", ("a", "b", 1234)))

    assert transfer.legs == (Leg("a", "b", 1234, jpy),)
    assert jpy.format(transfer.legs[0].amount) == "1234"
