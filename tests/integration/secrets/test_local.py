"""The default store (environment and files), and the cache's outage lines, on real files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ledgerd.platform.secrets.cache import SecretCache
from ledgerd.platform.secrets.local import LocalSecretStore
from ledgerd.platform.secrets.ports import SecretNotFoundError
from ledgerd.platform.secrets.references import parse_reference


async def test_reads_a_variable_and_a_file_without_its_trailing_newline(tmp_path: Path) -> None:
    secret_file = tmp_path / "db"
    secret_file.write_text("postgresql://app:pw@db/ledger\n")
    store = LocalSecretStore({"DB_URL": "from-the-environment"})
    variable = await store.read(parse_reference("secret://env/DB_URL"))
    file = await store.read(parse_reference(f"secret://file{secret_file}"))
    assert (variable.reveal(), file.reveal()) == (
        "from-the-environment",
        "postgresql://app:pw@db/ledger",
    )
    with pytest.raises(SecretNotFoundError, match="not set"):
        await store.read(parse_reference("secret://env/ABSENT"))
    with pytest.raises(SecretNotFoundError, match="no such file"):
        await store.read(parse_reference(f"secret://file{tmp_path}/absent"))


async def test_a_failing_store_warns_once_keeps_the_value_and_says_when_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ledgerd.platform.secrets")
    secret_file = tmp_path / "key"
    secret_file.write_text("first-value")
    reference = parse_reference(f"secret://file{secret_file}")
    store = LocalSecretStore({})
    cache = SecretCache({"file": store}, ttl_s=1)
    await cache.resolve(reference)
    secret_file.unlink()
    await cache.refresh()
    await cache.refresh()
    assert cache.current(reference).reveal() == "first-value"
    secret_file.write_text("second-value")
    await cache.refresh()
    assert cache.current(reference).reveal() == "second-value"
    messages = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert [level for level, _ in messages] == ["WARNING", "INFO", "INFO"], messages
    assert messages[0][1] == (
        f"secret {reference} could not be refreshed (no such file); keeping the value read before"
    )
    assert messages[1][1].startswith(f"secret {reference} changed")
    assert messages[2][1] == "the file secret store answers again"
    assert "first-value" not in caplog.text
    assert "second-value" not in caplog.text
