"""How many posting groups the batcher keeps in flight, by database."""

from __future__ import annotations

import pytest

from ledgerd.main.contexts.ledger import posting_workers
from ledgerd.main.settings import Settings

SQLITE = "sqlite+aiosqlite:///ledgerd.db"
POSTGRESQL = "postgresql+asyncpg://ledgerd@127.0.0.1/ledgerd"


@pytest.fixture(autouse=True)
def _no_workers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGERD_BATCH_WORKERS", raising=False)


def test_sqlite_posts_one_group_at_a_time_by_default() -> None:
    assert posting_workers(Settings(database_url=SQLITE)) == 1


def test_postgresql_keeps_four_groups_in_flight_by_default() -> None:
    assert posting_workers(Settings(database_url=POSTGRESQL)) == 4


@pytest.mark.parametrize("url", [SQLITE, POSTGRESQL])
def test_a_setting_wins_over_the_default(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERD_BATCH_WORKERS", "3")
    assert posting_workers(Settings(database_url=url)) == 3


def test_the_setting_refuses_zero_workers() -> None:
    with pytest.raises(ValueError, match="batch_workers"):
        Settings(database_url=SQLITE, batch_workers=0)
