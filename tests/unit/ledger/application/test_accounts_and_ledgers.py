import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.ledger.application.change_account_status import ChangeAccountStatus
from ledgerd.ledger.application.create_ledger import CreateLedger
from ledgerd.ledger.application.open_account import OpenAccount
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import GENESIS_HASH, AccountFlags, AccountStatus, LedgerHead
from ledgerd.ledger.domain.requests import VoidRequest
from tests.fakes.clock import START
from tests.fakes.ledger_app import LedgerApp, make_ledger_app
from tests.unit.ledger.application.scenario import EUR, FUNDED, LEDGER, USD, account, pay

# -- create_ledger ------------------------------------------------------------------------


async def test_create_ledger_and_its_genesis_head() -> None:
    app = make_ledger_app()

    ledger = await app.create_ledger(CreateLedger("L", "Main", {"region": "eu"}))

    assert (ledger.id, ledger.name, dict(ledger.metadata), ledger.created_at) == (
        "L",
        "Main",
        {"region": "eu"},
        START,
    )
    assert app.tables.heads["L"] == LedgerHead("L", 0, GENESIS_HASH)
    assert app.uow.commits == 1


async def test_create_ledger_is_idempotent() -> None:
    app = make_ledger_app()
    first = await app.create_ledger(CreateLedger("L", "Main", {"region": "eu"}))

    again = await app.create_ledger(CreateLedger("L", "Main", {"region": "eu"}))

    assert again == first
    assert app.uow.commits == 1


@pytest.mark.parametrize(
    "command", [CreateLedger("L", "Other", {"region": "eu"}), CreateLedger("L", "Main")]
)
async def test_create_ledger_under_a_taken_id(command: CreateLedger) -> None:
    app = make_ledger_app()
    await app.create_ledger(CreateLedger("L", "Main", {"region": "eu"}))

    with pytest.raises(LedgerdError) as caught:
        await app.create_ledger(command)

    assert caught.value.code is LedgerErrorCode.LEDGER_ALREADY_EXISTS
    assert caught.value.details == {"ledger": "L"}


@pytest.mark.parametrize(
    "command",
    [
        CreateLedger("bad id"),
        CreateLedger("L", "x" * 201),
        CreateLedger("L", metadata={"k": 1}),  # type: ignore[dict-item]
    ],
)
async def test_create_ledger_validates(command: CreateLedger) -> None:
    app = make_ledger_app()

    with pytest.raises(LedgerdError) as caught:
        await app.create_ledger(command)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert app.uow.transactions == 0


# -- open_account -------------------------------------------------------------------------


async def test_open_account(app: LedgerApp) -> None:
    opened = await app.open_account(
        OpenAccount(LEDGER, "carol", EUR, FUNDED, metadata={"kind": "wallet"})
    )

    assert account(app, "carol") == opened
    assert (opened.asset, opened.flags, opened.status) == (EUR, FUNDED, AccountStatus.OPEN)
    assert opened.metadata == {"kind": "wallet"}


async def test_open_account_is_idempotent(app: LedgerApp) -> None:
    commits = app.uow.commits

    again = await app.open_account(OpenAccount(LEDGER, "alice", USD, FUNDED))

    assert again == account(app, "alice")
    assert app.uow.commits == commits


@pytest.mark.parametrize(
    "command",
    [
        OpenAccount(LEDGER, "alice", EUR, FUNDED),
        OpenAccount(LEDGER, "alice", USD),
        OpenAccount(
            LEDGER,
            "alice",
            USD,
            AccountFlags(debits_must_not_exceed_credits=True, overdraft_limit=1),
        ),
        OpenAccount(LEDGER, "alice", USD, FUNDED, metadata={"a": "b"}),
    ],
)
async def test_open_account_under_a_taken_id(app: LedgerApp, command: OpenAccount) -> None:
    with pytest.raises(LedgerdError) as caught:
        await app.open_account(command)

    assert caught.value.code is LedgerErrorCode.ACCOUNT_ALREADY_EXISTS
    assert caught.value.details == {"account": "alice"}


async def test_open_account_in_an_unknown_ledger(app: LedgerApp) -> None:
    with pytest.raises(LedgerdError) as caught:
        await app.open_account(OpenAccount("nope", "x", USD))

    assert caught.value.code is LedgerErrorCode.LEDGER_NOT_FOUND


@pytest.mark.parametrize(
    "command",
    [
        OpenAccount("bad id", "x", USD),
        OpenAccount(LEDGER, "bad id", USD),
        OpenAccount(LEDGER, "x", USD, metadata={"k" * 65: "v"}),
    ],
)
async def test_open_account_validates(app: LedgerApp, command: OpenAccount) -> None:
    with pytest.raises(LedgerdError) as caught:
        await app.open_account(command)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED


# -- change_account_status ----------------------------------------------------------------


async def _status(app: LedgerApp, account_id: str, status: AccountStatus) -> AccountStatus:
    changed = await app.change_account_status(ChangeAccountStatus(LEDGER, account_id, status))
    assert changed == account(app, account_id)
    return changed.status


async def test_freeze_unfreeze_close(app: LedgerApp) -> None:
    assert await _status(app, "alice", AccountStatus.FROZEN) is AccountStatus.FROZEN
    assert account(app, "alice").version == 1
    assert await _status(app, "alice", AccountStatus.OPEN) is AccountStatus.OPEN
    assert await _status(app, "alice", AccountStatus.CLOSED) is AccountStatus.CLOSED
    assert account(app, "alice").version == 3


async def test_the_same_status_again_changes_nothing(app: LedgerApp) -> None:
    await _status(app, "alice", AccountStatus.FROZEN)
    commits = app.uow.commits

    assert await _status(app, "alice", AccountStatus.FROZEN) is AccountStatus.FROZEN
    assert app.uow.commits == commits


async def test_close_with_pending_holds_then_after_the_void(app: LedgerApp) -> None:
    await app.post_transfers.post_one(LEDGER, pay("fund", ("bank", "alice", 10)))
    hold = await app.post_transfers.post_one(LEDGER, pay("h", ("alice", "bob", 5), pending=True))

    for holder in ("alice", "bob"):
        with pytest.raises(LedgerdError) as caught:
            await _status(app, holder, AccountStatus.CLOSED)
        assert caught.value.code is LedgerErrorCode.ACCOUNT_HAS_PENDING

    await _status(app, "bob", AccountStatus.FROZEN)
    await app.post_transfers.post_one(LEDGER, VoidRequest(hold.transfer.id))
    assert await _status(app, "bob", AccountStatus.CLOSED) is AccountStatus.CLOSED


@pytest.mark.parametrize("status", [AccountStatus.OPEN, AccountStatus.FROZEN])
async def test_closed_is_final(app: LedgerApp, status: AccountStatus) -> None:
    await _status(app, "alice", AccountStatus.CLOSED)

    with pytest.raises(LedgerdError) as caught:
        await _status(app, "alice", status)

    assert caught.value.code is LedgerErrorCode.ACCOUNT_CLOSED
    assert account(app, "alice").status is AccountStatus.CLOSED


@pytest.mark.parametrize(
    ("ledger_id", "account_id", "code"),
    [
        ("nope", "alice", LedgerErrorCode.LEDGER_NOT_FOUND),
        (LEDGER, "nope", LedgerErrorCode.ACCOUNT_NOT_FOUND),
        (LEDGER, "no pe", ErrorCode.VALIDATION_FAILED),
    ],
)
async def test_change_status_of_unknown_accounts(
    app: LedgerApp, ledger_id: str, account_id: str, code: ErrorCode
) -> None:
    with pytest.raises(LedgerdError) as caught:
        await app.change_account_status(
            ChangeAccountStatus(ledger_id, account_id, AccountStatus.FROZEN)
        )

    assert caught.value.code is code
