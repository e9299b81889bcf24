import dataclasses
from datetime import UTC, datetime

import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.money import MAX_AMOUNT, Asset
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import (
    Account,
    AccountFlags,
    AccountStatus,
    Balances,
    Layer,
    Side,
    new_account,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
USD = Asset("USD", 2)


def account(
    balances: Balances | None = None,
    flags: AccountFlags | None = None,
    status: AccountStatus = AccountStatus.OPEN,
) -> Account:
    opened = new_account("ledger", "acct", USD, T0, flags=flags)
    return dataclasses.replace(opened, balances=balances or Balances(), status=status)


# -- Balances -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "layer", "field"),
    [
        (Side.DEBIT, Layer.POSTED, "posted_debits"),
        (Side.CREDIT, Layer.POSTED, "posted_credits"),
        (Side.DEBIT, Layer.PENDING, "pending_debits"),
        (Side.CREDIT, Layer.PENDING, "pending_credits"),
    ],
)
def test_moved_changes_exactly_one_balance(side: Side, layer: Layer, field: str) -> None:
    before = Balances(1, 2, 3, 4)

    after = before.moved(side, layer, 10)

    assert getattr(after, field) == getattr(before, field) + 10
    assert dataclasses.replace(after, **{field: getattr(before, field)}) == before
    assert after.moved(side, layer, -10) == before


def test_moved_up_to_the_maximum_is_fine() -> None:
    assert Balances(posted_debits=MAX_AMOUNT - 1).moved(Side.DEBIT, Layer.POSTED, 1) == Balances(
        posted_debits=MAX_AMOUNT
    )


@pytest.mark.parametrize(("side", "layer"), [(s, la) for s in Side for la in Layer])
def test_moved_past_the_maximum_overflows(side: Side, layer: Layer) -> None:
    field = f"{layer.value}_{side.value}s"
    full = Balances(**{field: MAX_AMOUNT})

    with pytest.raises(LedgerdError) as caught:
        full.moved(side, layer, 1)

    assert caught.value.code is LedgerErrorCode.BALANCE_OVERFLOW
    assert caught.value.details == {"balance": field}


def test_releasing_more_than_held_is_a_bug_not_a_client_error() -> None:
    with pytest.raises(AssertionError):
        Balances(pending_debits=5).moved(Side.DEBIT, Layer.PENDING, -6)


def test_available_on_a_credit_normal_account() -> None:
    # Credits in 100, spent 30, 20 on hold towards others; incoming holds are not spendable.
    balances = Balances(
        posted_debits=30, posted_credits=100, pending_debits=20, pending_credits=500
    )

    assert balances.available(Side.CREDIT) == 50


def test_available_on_a_debit_normal_account() -> None:
    balances = Balances(
        posted_debits=100, posted_credits=30, pending_debits=500, pending_credits=20
    )

    assert balances.available(Side.DEBIT) == 50


def test_normal_side_follows_the_flags() -> None:
    assert account().normal_side is Side.CREDIT
    debit_capped = AccountFlags(debits_must_not_exceed_credits=True)
    assert account(flags=debit_capped).normal_side is Side.CREDIT
    credit_capped = AccountFlags(credits_must_not_exceed_debits=True)
    assert account(flags=credit_capped).normal_side is Side.DEBIT
    assert account(Balances(posted_debits=100, posted_credits=30), credit_capped).available == 70


# -- AccountFlags -------------------------------------------------------------------------


def test_flags_defaults_are_unconstrained() -> None:
    assert AccountFlags() == AccountFlags(False, False, 0)  # noqa: FBT003 - positional on purpose


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (
            {"debits_must_not_exceed_credits": True, "credits_must_not_exceed_debits": True},
            "flags",
        ),
        ({"debits_must_not_exceed_credits": True, "overdraft_limit": -1}, "flags.overdraft_limit"),
        (
            {"debits_must_not_exceed_credits": True, "overdraft_limit": MAX_AMOUNT + 1},
            "flags.overdraft_limit",
        ),
        (
            {"debits_must_not_exceed_credits": True, "overdraft_limit": True},
            "flags.overdraft_limit",
        ),
        ({"debits_must_not_exceed_credits": True, "overdraft_limit": 1.5}, "flags.overdraft_limit"),
        ({"overdraft_limit": 100}, "flags.overdraft_limit"),
    ],
)
def test_flags_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(LedgerdError) as caught:
        AccountFlags(**kwargs)  # type: ignore[arg-type]

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert caught.value.details == {"field": field}


def test_flags_accept_an_overdraft_on_either_side() -> None:
    AccountFlags(debits_must_not_exceed_credits=True, overdraft_limit=MAX_AMOUNT)
    AccountFlags(credits_must_not_exceed_debits=True, overdraft_limit=1)


# -- constraints --------------------------------------------------------------------------

NO_OVERDRAFT = AccountFlags(debits_must_not_exceed_credits=True)


@pytest.mark.parametrize(
    ("balances", "flags", "code"),
    [
        (Balances(posted_debits=100, posted_credits=100), NO_OVERDRAFT, None),
        (Balances(posted_debits=101, posted_credits=100), NO_OVERDRAFT, "INSUFFICIENT_FUNDS"),
        # A hold counts against the funds; an incoming hold does not add to them.
        (Balances(posted_credits=100, pending_debits=100), NO_OVERDRAFT, None),
        (
            Balances(posted_debits=1, posted_credits=100, pending_debits=100),
            NO_OVERDRAFT,
            "INSUFFICIENT_FUNDS",
        ),
        (Balances(posted_debits=1, pending_credits=100), NO_OVERDRAFT, "INSUFFICIENT_FUNDS"),
        (
            Balances(posted_debits=150, posted_credits=100),
            AccountFlags(debits_must_not_exceed_credits=True, overdraft_limit=50),
            None,
        ),
        (
            Balances(posted_debits=100, posted_credits=100, pending_debits=51),
            AccountFlags(debits_must_not_exceed_credits=True, overdraft_limit=50),
            "INSUFFICIENT_FUNDS",
        ),
        (
            Balances(posted_debits=100, posted_credits=100),
            AccountFlags(credits_must_not_exceed_debits=True),
            None,
        ),
        (
            Balances(posted_debits=100, posted_credits=100, pending_credits=1),
            AccountFlags(credits_must_not_exceed_debits=True),
            "CREDIT_LIMIT_EXCEEDED",
        ),
        (
            Balances(posted_credits=20),
            AccountFlags(credits_must_not_exceed_debits=True, overdraft_limit=20),
            None,
        ),
        (
            Balances(posted_credits=21),
            AccountFlags(credits_must_not_exceed_debits=True, overdraft_limit=20),
            "CREDIT_LIMIT_EXCEEDED",
        ),
        (Balances(posted_debits=MAX_AMOUNT, pending_credits=MAX_AMOUNT), AccountFlags(), None),
    ],
)
def test_constraint_violation(balances: Balances, flags: AccountFlags, code: str | None) -> None:
    violation = account(balances, flags).constraint_violation()

    if code is None:
        assert violation is None
    else:
        assert violation is not None
        assert violation.code == code
        assert violation.details == {"account": "acct"}


# -- available within int64 ---------------------------------------------------------------

INT64_MIN = -(2**63)
LOWEST = Balances(posted_debits=MAX_AMOUNT, pending_debits=1)  # available exactly -2**63


@pytest.mark.parametrize(
    ("before", "after", "overflows"),
    [
        (Balances(), LOWEST, False),
        (Balances(), dataclasses.replace(LOWEST, pending_debits=2), True),
        (LOWEST, dataclasses.replace(LOWEST, pending_debits=MAX_AMOUNT), True),
        # Out of range already (an account from before the rule): no worse is let through,
        # so that what brings the account back is not refused on the way.
        (
            Balances(posted_debits=MAX_AMOUNT, pending_debits=10),
            Balances(posted_debits=MAX_AMOUNT, pending_debits=4),
            False,
        ),
        (
            Balances(posted_debits=MAX_AMOUNT, pending_debits=10),
            Balances(posted_debits=MAX_AMOUNT, pending_debits=10),
            False,
        ),
        (
            Balances(posted_debits=MAX_AMOUNT, pending_debits=10),
            Balances(posted_debits=MAX_AMOUNT, pending_debits=11),
            True,
        ),
        # Unreachable while each balance stops at 2**63-1, but the top is a bound all the same.
        (Balances(), Balances(posted_credits=MAX_AMOUNT), False),
        (Balances(), Balances(posted_credits=MAX_AMOUNT + 1), True),
    ],
)
def test_available_overflow(before: Balances, after: Balances, *, overflows: bool) -> None:
    error = account(after).available_overflow(before=account(before))

    if not overflows:
        assert error is None
        return
    assert error is not None
    assert error.code is LedgerErrorCode.BALANCE_OVERFLOW
    assert error.details == {"account": "acct", "balance": "available"}
    assert str(INT64_MIN if account(after).available < 0 else MAX_AMOUNT) in error.message


def test_available_overflow_counts_on_the_accounts_normal_side() -> None:
    # Debit-normal: pending credits count against it; pending debits do not.
    credit_capped = AccountFlags(credits_must_not_exceed_debits=True, overdraft_limit=MAX_AMOUNT)
    low = Balances(posted_credits=MAX_AMOUNT, pending_credits=2)
    assert account(low, credit_capped).available == INT64_MIN - 1
    assert account(low, credit_capped).available_overflow(before=account()) is not None
    assert account(low).available_overflow(before=account()) is None  # credit-normal: +2**63-1


# -- status -------------------------------------------------------------------------------


def test_open_accounts_move_and_others_do_not() -> None:
    account().ensure_movable()
    for status, code in (
        (AccountStatus.FROZEN, LedgerErrorCode.ACCOUNT_FROZEN),
        (AccountStatus.CLOSED, LedgerErrorCode.ACCOUNT_CLOSED),
    ):
        with pytest.raises(LedgerdError) as caught:
            account(status=status).ensure_movable()
        assert caught.value.code is code


def test_freeze_unfreeze_and_close() -> None:
    frozen = account().with_status(AccountStatus.FROZEN)
    assert frozen.status is AccountStatus.FROZEN
    assert frozen.with_status(AccountStatus.OPEN).status is AccountStatus.OPEN
    assert frozen.with_status(AccountStatus.CLOSED).status is AccountStatus.CLOSED


@pytest.mark.parametrize("held", [Balances(pending_debits=1), Balances(pending_credits=1)])
def test_close_with_pending_holds_is_refused(held: Balances) -> None:
    with pytest.raises(LedgerdError) as caught:
        account(held).with_status(AccountStatus.CLOSED)

    assert caught.value.code is LedgerErrorCode.ACCOUNT_HAS_PENDING


def test_close_with_posted_balance_is_allowed() -> None:
    closed = account(Balances(posted_debits=5)).with_status(AccountStatus.CLOSED)

    assert closed.status is AccountStatus.CLOSED


@pytest.mark.parametrize("status", list(AccountStatus))
def test_closed_is_final(status: AccountStatus) -> None:
    closed = account(status=AccountStatus.CLOSED)

    with pytest.raises(LedgerdError) as caught:
        closed.with_status(status)

    assert caught.value.code is LedgerErrorCode.ACCOUNT_CLOSED


def test_with_status_returns_a_new_account() -> None:
    original = account()

    frozen = original.with_status(AccountStatus.FROZEN)

    assert original.status is AccountStatus.OPEN
    assert frozen is not original
