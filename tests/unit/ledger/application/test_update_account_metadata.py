"""UpdateAccountMetadata: keys set and removed in one new version with one event, or nothing."""

from __future__ import annotations

import pytest

from ledgerd.kernel.errors import ConcurrencyConflictError, ErrorCode, LedgerdError
from ledgerd.kernel.metadata import MAX_METADATA_ENTRIES
from ledgerd.ledger.application.change_account_status import ChangeAccountStatus
from ledgerd.ledger.application.update_account_metadata import (
    MAX_REMOVE_KEYS,
    UpdateAccountMetadata,
)
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.events import AccountMetadataChanged
from ledgerd.ledger.domain.model import Account, AccountStatus
from tests.fakes.ledger_app import LedgerApp
from tests.unit.ledger.application.scenario import LEDGER, account, open_account


@pytest.fixture
async def tagged(app: LedgerApp) -> Account:
    """``carol``, opened with two metadata keys, at version 0."""
    return await open_account(app, "carol", metadata={"tier": "gold", "region": "eu"})


def _events(app: LedgerApp) -> list[object]:
    return list(app.tables.events[LEDGER])


async def _refused(app: LedgerApp, command: UpdateAccountMetadata) -> LedgerdError:
    """The error ``command`` fails with, having changed nothing at all."""
    before = (dict(app.tables.accounts), _events(app))
    with pytest.raises(LedgerdError) as caught:
        await app.update_account_metadata(command)
    assert (dict(app.tables.accounts), _events(app)) == before
    return caught.value


async def test_sets_overwrites_and_removes_keys_in_one_new_version(
    app: LedgerApp, tagged: Account
) -> None:
    updated = await app.update_account_metadata(
        UpdateAccountMetadata(
            LEDGER,
            "carol",
            metadata={"tier": "platinum", "owner": "ops"},
            remove_keys=("region", "never-set"),
        )
    )

    assert dict(updated.metadata) == {"tier": "platinum", "owner": "ops"}
    assert updated.version == tagged.version + 1
    assert account(app, "carol") == updated
    *_, event = _events(app)
    assert event == AccountMetadataChanged(updated)


async def test_what_is_already_there_changes_nothing(app: LedgerApp, tagged: Account) -> None:
    events, commits = _events(app), app.uow.commits

    same = await app.update_account_metadata(
        UpdateAccountMetadata(LEDGER, "carol", metadata={"tier": "gold"}, remove_keys=("gone",))
    )
    nothing = await app.update_account_metadata(UpdateAccountMetadata(LEDGER, "carol"))

    assert same == nothing == tagged == account(app, "carol")
    assert (_events(app), app.uow.commits) == (events, commits)


@pytest.mark.usefixtures("tagged")
async def test_a_key_both_set_and_removed_is_refused_by_name(app: LedgerApp) -> None:
    error = await _refused(
        app,
        UpdateAccountMetadata(
            LEDGER, "carol", metadata={"tier": "x"}, remove_keys=("region", "tier")
        ),
    )

    assert error.code is ErrorCode.VALIDATION_FAILED
    assert dict(error.details) == {"field": "remove_keys[1]"}
    assert "tier" in error.message


@pytest.mark.parametrize(
    ("metadata", "remove_keys", "field"),
    [
        ({"bad key": "x"}, (), "metadata"),
        ({"note": "x" * 1025}, (), "metadata.note"),
        ({}, ("ok", "bad key"), "remove_keys[1]"),
        ({}, ("",), "remove_keys[0]"),
        ({}, tuple(f"k{n}" for n in range(MAX_REMOVE_KEYS + 1)), "remove_keys"),
    ],
)
@pytest.mark.usefixtures("tagged")
async def test_malformed_keys_and_values_are_refused(
    app: LedgerApp,
    metadata: dict[str, str],
    remove_keys: tuple[str, ...],
    field: str,
) -> None:
    error = await _refused(app, UpdateAccountMetadata(LEDGER, "carol", metadata, remove_keys))

    assert (error.code, error.details["field"]) == (ErrorCode.VALIDATION_FAILED, field)


async def test_the_result_must_fit_the_limits_an_account_is_opened_with(
    app: LedgerApp, tagged: Account
) -> None:
    room = MAX_METADATA_ENTRIES - len(tagged.metadata)
    more = {f"k{n}": "v" for n in range(room + 1)}

    error = await _refused(app, UpdateAccountMetadata(LEDGER, "carol", metadata=more))
    # Removing one makes room: the limit is on the result, not on the request.
    fits = await app.update_account_metadata(
        UpdateAccountMetadata(LEDGER, "carol", metadata=more, remove_keys=("region",))
    )

    assert (error.code, error.details["field"]) == (ErrorCode.VALIDATION_FAILED, "metadata")
    assert len(fits.metadata) == MAX_METADATA_ENTRIES


@pytest.mark.usefixtures("tagged")
async def test_a_stale_expected_version_is_a_conflict_not_retried(app: LedgerApp) -> None:
    await app.update_account_metadata(UpdateAccountMetadata(LEDGER, "carol", {"tier": "silver"}))
    transactions = app.uow.transactions

    error = await _refused(
        app,
        UpdateAccountMetadata(LEDGER, "carol", {"tier": "bronze"}, expected_version=0),
    )

    assert error.code is ErrorCode.CONCURRENCY_CONFLICT
    assert dict(error.details) == {
        "account": "carol",
        "expected_version": "0",
        "actual_version": "1",
    }
    # Not the adapters' retryable kind, and tried once: a retry would read the same version.
    assert not isinstance(error, ConcurrencyConflictError)
    assert app.uow.transactions == transactions + 1


@pytest.mark.usefixtures("tagged")
async def test_the_expected_version_when_it_is_current(app: LedgerApp) -> None:
    updated = await app.update_account_metadata(
        UpdateAccountMetadata(LEDGER, "carol", {"tier": "silver"}, expected_version=0)
    )
    # Nothing to change is not a conflict either, at the version the account is at.
    again = await app.update_account_metadata(
        UpdateAccountMetadata(LEDGER, "carol", {"tier": "silver"}, expected_version=1)
    )

    assert updated.version == again.version == 1


@pytest.mark.usefixtures("tagged")
async def test_a_lost_race_is_retried_and_applied_once(app: LedgerApp) -> None:
    app.uow.conflicts_to_raise = 1

    updated = await app.update_account_metadata(
        UpdateAccountMetadata(LEDGER, "carol", {"tier": "silver"}, expected_version=0)
    )

    assert (updated.version, account(app, "carol").version) == (1, 1)
    assert sum(isinstance(event, AccountMetadataChanged) for event in _events(app)) == 1


@pytest.mark.usefixtures("tagged")
async def test_a_negative_expected_version_is_malformed(app: LedgerApp) -> None:
    error = await _refused(
        app, UpdateAccountMetadata(LEDGER, "carol", {"tier": "x"}, expected_version=-1)
    )

    assert (error.code, error.details["field"]) == (ErrorCode.VALIDATION_FAILED, "expected_version")


@pytest.mark.usefixtures("tagged")
async def test_a_frozen_account_takes_new_metadata_a_closed_one_does_not(app: LedgerApp) -> None:
    change = app.change_account_status
    await change(ChangeAccountStatus(LEDGER, "carol", AccountStatus.FROZEN))
    frozen = await app.update_account_metadata(
        UpdateAccountMetadata(LEDGER, "carol", {"tier": "silver"})
    )
    await change(ChangeAccountStatus(LEDGER, "carol", AccountStatus.CLOSED))

    error = await _refused(app, UpdateAccountMetadata(LEDGER, "carol", {"tier": "gold"}))

    assert (frozen.status, dict(frozen.metadata)["tier"]) == (AccountStatus.FROZEN, "silver")
    assert (error.code, dict(error.details)) == (
        LedgerErrorCode.ACCOUNT_CLOSED,
        {"account": "carol"},
    )


async def test_unknown_ledger_and_account(app: LedgerApp) -> None:
    missing_ledger = await _refused(app, UpdateAccountMetadata("nope", "carol", {"a": "b"}))
    missing_account = await _refused(app, UpdateAccountMetadata(LEDGER, "nobody", {"a": "b"}))
    bad_id = await _refused(app, UpdateAccountMetadata(LEDGER, "no body", {"a": "b"}))

    assert missing_ledger.code is LedgerErrorCode.LEDGER_NOT_FOUND
    assert (missing_account.code, dict(missing_account.details)) == (
        LedgerErrorCode.ACCOUNT_NOT_FOUND,
        {"account": "nobody"},
    )
    assert bad_id.code is ErrorCode.VALIDATION_FAILED
