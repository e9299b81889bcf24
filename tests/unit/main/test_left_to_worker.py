"""What ``serve`` says it leaves to ``ledgerd worker``: the workers only ``worker`` runs."""

from __future__ import annotations

from ledgerd.main.background import left_to_worker
from ledgerd.main.settings import Settings

POSTGRES = "postgresql+asyncpg://ledgerd@127.0.0.1/ledgerd"
SQLITE = "sqlite+aiosqlite:///ledgerd.db"


def test_on_postgresql_webhook_deliveries_are_the_workers() -> None:
    assert left_to_worker(Settings(database_url=POSTGRES)) == ["webhook deliveries"]


def test_on_sqlite_serve_runs_everything_and_says_nothing() -> None:
    assert left_to_worker(Settings(database_url=SQLITE)) == []


def test_a_setting_moving_deliveries_into_serve_is_followed() -> None:
    settings = Settings(database_url=POSTGRES, webhooks_in_serve="on")
    assert left_to_worker(settings) == []
