"""A process's commits say which stream (ledger) they wrote events to, once committed.

On SQLite that is what wakes the live streams' hub: the ledger that committed, not every
ledger watched (on PostgreSQL the NOTIFY names it, ``test_relay_postgres.py``). And the
store answers many streams' last sequences in one question, the hub's safety net.
"""

from __future__ import annotations

import pytest

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application.update_account_metadata import (
    UpdateAccountMetadata,
    UpdateAccountMetadataHandler,
)
from ledgerd.ledger.domain.repositories import AccountRepository, LedgerRepository
from ledgerd.main.contexts.streaming import waking_the_hub
from ledgerd.main.settings import Settings
from ledgerd.platform.outbox.commits import CommittedStreams
from ledgerd.platform.outbox.store import OutboxStore
from ledgerd.platform.outbox.writer import OutboxWriter
from ledgerd.streaming.application.hub import StreamHub
from tests.integration.conftest import LedgerApp, open_ledger_app
from tests.integration.outbox.helpers import (
    CrashBeforeCommitError,
    OutboxThenCrash,
    open_books,
    pay,
)


async def test_a_commit_names_its_stream_and_a_rollback_nothing(ledger_app: LedgerApp) -> None:
    heard: list[str] = []
    streams = await ledger_app.container.get(CommittedStreams)
    stop_listening = streams.listen(heard.append)
    await open_books(ledger_app, "books", "bank", "alice")
    await open_books(ledger_app, "other", "x", "y")
    assert set(heard) == {"books", "other"}

    heard.clear()
    await ledger_app.post.post_one("books", pay("p1", "bank", "alice", 100))
    assert heard == ["books"]

    heard.clear()
    container = ledger_app.container
    crashing = UpdateAccountMetadataHandler(
        uow=await container.get(UnitOfWork),
        ledgers=await container.get(LedgerRepository),
        accounts=await container.get(AccountRepository),
        events=OutboxThenCrash(await container.get(OutboxWriter), await container.get(Clock)),
    )
    with pytest.raises(CrashBeforeCommitError):
        await crashing(UpdateAccountMetadata("books", "alice", {"tier": "gold"}))
    assert heard == []  # written, rolled back: nothing to read

    stop_listening()
    await ledger_app.update_metadata(UpdateAccountMetadata("books", "alice", {"tier": "gold"}))
    assert heard == []


async def test_on_sqlite_a_commit_wakes_the_feed_of_its_ledger_alone(
    migrated_sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_ledger_app(migrated_sqlite_url) as app:
        await open_books(app, "books", "bank", "alice")
        await open_books(app, "other", "x", "y")
        hub = await app.container.get(StreamHub)
        woken: list[str] = []
        every: list[str] = []
        # Recorders in the hub's place: which feed a commit asks to read is the point here,
        # not the reading (the stream tests read).
        monkeypatch.setattr(hub, "wake", woken.append)
        monkeypatch.setattr(hub, "wake_all", lambda: every.append("all"))
        settings = await app.container.get(Settings)
        async with waking_the_hub(app.container, settings, "serve"):
            await app.post.post_one("books", pay("p1", "bank", "alice", 100))
            await app.post.post_one("other", pay("p2", "x", "y", 5))
        await app.post.post_one("books", pay("p3", "bank", "alice", 1))  # after: not heard

        assert woken == ["books", "other"]
        assert every == []


async def test_the_last_sequences_of_many_streams_in_one_question(ledger_app: LedgerApp) -> None:
    """What the live streams' safety net asks: beyond one batch of names, unknown ones absent."""
    await open_books(ledger_app, "books", "bank", "alice")
    await open_books(ledger_app, "other", "x")
    await ledger_app.post.post_one("books", pay("p1", "bank", "alice", 100))
    store = await ledger_app.container.get(OutboxStore)
    unknown = [f"nowhere-{number}" for number in range(1_500)]  # more than one query's worth

    lasts = await store.last_sequences(["books", *unknown, "other"])

    assert lasts == {
        "books": await store.last_sequence("books"),
        "other": await store.last_sequence("other"),
    }
    assert lasts["books"] > lasts["other"] > 0
