"""AccountMetadataChanged is written with the change it reports, and only then: both DBs."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application.update_account_metadata import (
    UpdateAccountMetadata,
    UpdateAccountMetadataHandler,
)
from ledgerd.ledger.domain.repositories import AccountRepository, LedgerRepository
from ledgerd.ledger.published.events import decode
from ledgerd.platform.outbox import tables as outbox
from ledgerd.platform.outbox.writer import OutboxWriter
from ledgerd.v1 import events_pb2 as events_pb
from tests.integration.conftest import LedgerApp, dump_tables
from tests.integration.outbox.helpers import CrashBeforeCommitError, OutboxThenCrash, open_books


async def _events(app: LedgerApp) -> list[tuple[str, str, bytes]]:
    rows = outbox.outbox_events.c
    async with app.engine.connect() as connection:
        found = await connection.execute(
            select(rows.type, rows.subject, rows.data).order_by(rows.sequence)
        )
        return [(row.type, row.subject, row.data) for row in found]


async def test_a_change_is_one_event_carrying_the_account_after_it(ledger_app: LedgerApp) -> None:
    await open_books(ledger_app, "books", "bank", "alice")
    before = await _events(ledger_app)

    updated = await ledger_app.update_metadata(
        UpdateAccountMetadata("books", "alice", {"tier": "gold"})
    )

    (*rest, (event_type, subject, data)) = await _events(ledger_app)
    assert rest == before
    assert (event_type, subject) == ("ledgerd.v1.AccountMetadataChanged", "accounts/alice")
    message = decode(event_type, data)
    assert isinstance(message, events_pb.AccountMetadataChanged)
    assert (dict(message.account.metadata), message.account.version) == (
        {"tier": "gold"},
        updated.version,
    )


async def test_no_change_and_refusals_write_no_event(ledger_app: LedgerApp) -> None:
    await open_books(ledger_app, "books", "bank", "alice")
    await ledger_app.update_metadata(UpdateAccountMetadata("books", "alice", {"tier": "gold"}))
    before = await dump_tables(ledger_app.engine)

    await ledger_app.update_metadata(UpdateAccountMetadata("books", "alice", {"tier": "gold"}))
    with pytest.raises(LedgerdError):
        await ledger_app.update_metadata(
            UpdateAccountMetadata("books", "alice", {"tier": "x"}, expected_version=0)
        )

    assert await dump_tables(ledger_app.engine) == before


async def test_an_event_recorded_but_not_committed_is_rolled_back_with_the_change(
    ledger_app: LedgerApp,
) -> None:
    container = ledger_app.container
    await open_books(ledger_app, "books", "bank", "alice")
    crashing = UpdateAccountMetadataHandler(
        uow=await container.get(UnitOfWork),
        ledgers=await container.get(LedgerRepository),
        accounts=await container.get(AccountRepository),
        events=OutboxThenCrash(await container.get(OutboxWriter), await container.get(Clock)),
    )
    before = await dump_tables(ledger_app.engine)

    with pytest.raises(CrashBeforeCommitError):
        await crashing(UpdateAccountMetadata("books", "alice", {"tier": "gold"}))

    assert await dump_tables(ledger_app.engine) == before
    # The stream has no gap: the next event committed takes the next sequence.
    await ledger_app.update_metadata(UpdateAccountMetadata("books", "alice", {"tier": "gold"}))
    rows = outbox.outbox_events.c
    async with ledger_app.engine.connect() as connection:
        sequences = list((await connection.execute(select(rows.sequence))).scalars())
    assert sorted(sequences) == list(range(1, len(sequences) + 1))
