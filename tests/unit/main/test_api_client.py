"""How the client commands page through a listing: every page, or exactly ``limit`` items."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ledgerd.main.api_client import EXIT_FAILED, ClientError, gather
from ledgerd.v1 import ledger_pb2 as pb


class PagedLedgers:
    """A listing of ``count`` ledgers that pages as the server does, recording each ask."""

    def __init__(self, count: int) -> None:
        self.ids = [f"l{number:03d}" for number in range(count)]
        self.asks: list[tuple[int, str]] = []

    def __call__(self, size: int, token: str) -> tuple[Sequence[pb.Ledger], str]:
        self.asks.append((size, token))
        start = int(token) if token else 0
        end = min(start + size, len(self.ids))
        page = [pb.Ledger(id=ledger_id) for ledger_id in self.ids[start:end]]
        return page, (str(end) if end < len(self.ids) else "")


def test_every_page_is_read() -> None:
    listing = PagedLedgers(7)
    gathered = gather(listing, None, page_size=3)
    assert [ledger.id for ledger in gathered.items] == listing.ids
    assert gathered.next_page_token == ""
    assert listing.asks == [(3, ""), (3, "3"), (3, "6")]


def test_a_limit_asks_for_no_more_than_it_shows() -> None:
    listing = PagedLedgers(7)
    gathered = gather(listing, 4, page_size=3)
    assert [ledger.id for ledger in gathered.items] == listing.ids[:4]
    assert listing.asks == [(3, ""), (1, "3")]
    # The token continues right after what was shown.
    assert gathered.next_page_token == "4"


def test_a_limit_past_the_end_shows_everything() -> None:
    gathered = gather(PagedLedgers(2), 10, page_size=1000)
    assert (len(gathered.items), gathered.next_page_token) == (2, "")


def test_an_empty_listing() -> None:
    gathered = gather(PagedLedgers(0), None, page_size=1000)
    assert (list(gathered.items), gathered.next_page_token) == ([], "")


def test_a_listing_that_does_not_move_on_is_refused() -> None:
    def stuck(_size: int, _token: str) -> tuple[Sequence[pb.Ledger], str]:
        return [pb.Ledger(id="same")], "again"

    with pytest.raises(ClientError) as refused:
        gather(stuck, None, page_size=1000)
    assert refused.value.exit_code == EXIT_FAILED
