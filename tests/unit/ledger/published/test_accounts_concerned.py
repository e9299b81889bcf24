"""Which accounts each kind of event concerns: what account filters of streams and webhooks use."""

from __future__ import annotations

from ledgerd.ledger.published.events import accounts_concerned, message_of
from tests.unit.ledger.published.every_event import every_event


async def test_each_event_concerns_its_account_or_every_account_its_entries_touch() -> None:
    concerned = [
        (type(event).__name__, accounts_concerned(message_of(event)))
        for event in await every_event()
    ]
    by_type = dict(concerned)
    assert by_type["LedgerCreated"] == frozenset()
    assert by_type["AccountFrozen"] == {"alice"}
    assert by_type["AccountMetadataChanged"] == {"bank"}
    assert by_type["TransferPosted"] == {"bank", "alice"}
    # every account event names exactly one account, every transfer event at least two
    for name, accounts in concerned:
        if name.startswith("Account"):
            assert len(accounts) == 1, name
        elif name != "LedgerCreated":
            assert len(accounts) >= 2, name
