"""One event of every kind the ledger publishes, made by the use cases on the fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledgerd.ledger.application.change_account_status import ChangeAccountStatus
from ledgerd.ledger.application.expire_pending import ExpirePending
from ledgerd.ledger.application.update_account_metadata import UpdateAccountMetadata
from ledgerd.ledger.domain.events import LedgerEvent
from ledgerd.ledger.domain.model import AccountStatus
from ledgerd.ledger.domain.requests import CaptureRequest, ReversalRequest, VoidRequest
from ledgerd.ledger.published.events import message_of, subject_of, time_of
from ledgerd.platform.messaging.envelope import Envelope
from tests.fakes.ledger_app import make_ledger_app
from tests.unit.ledger.application.scenario import LEDGER, create_ledger, open_account, pay

NOW = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


async def every_event() -> list[LedgerEvent]:
    """Every kind of event at least once; metadata with keys out of order, and non-ASCII."""
    app = make_ledger_app()
    await create_ledger(app)
    await open_account(app, "bank", metadata={"zone": "eu", "name": "Banque Crédit"})
    await open_account(app, "alice")
    posted = await app.post_transfers.post_one(LEDGER, pay("p", ("bank", "alice", 500)))
    hold = await app.post_transfers.post_one(
        LEDGER, pay("h1", ("bank", "alice", 300), pending=True)
    )
    await app.post_transfers.post_one(LEDGER, CaptureRequest(hold.transfer.id, amount=200))
    hold = await app.post_transfers.post_one(
        LEDGER, pay("h2", ("bank", "alice", 100), pending=True)
    )
    await app.post_transfers.post_one(LEDGER, VoidRequest(hold.transfer.id))
    await app.post_transfers.post_one(
        LEDGER, pay("h3", ("bank", "alice", 50), pending=True, timeout=5)
    )
    app.clock.advance(timedelta(seconds=6))
    assert await app.expire_pending(ExpirePending()) == 1
    await app.post_transfers.post_one(LEDGER, ReversalRequest(posted.transfer.id))
    await app.update_account_metadata(
        UpdateAccountMetadata(LEDGER, "bank", {"zone": "us", "desk": "Trésorerie"}, ("name",))
    )
    for status in (AccountStatus.FROZEN, AccountStatus.OPEN, AccountStatus.CLOSED):
        await app.change_account_status(ChangeAccountStatus(LEDGER, "alice", status))
    return list(app.tables.events[LEDGER])


def envelope_of(event: LedgerEvent, sequence: int) -> Envelope:
    """The envelope the outbox would write for ``event`` (protobuf payload)."""
    message = message_of(event)
    return Envelope(
        id=f"event-{sequence}",
        source=f"/ledgerd/ledgers/{LEDGER}",
        type=message.DESCRIPTOR.full_name,
        subject=subject_of(event),
        time=time_of(event) or NOW,
        ledger=LEDGER,
        sequence=sequence,
        data=message.SerializeToString(),
    )
