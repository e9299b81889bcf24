"""The OpenBao (Vault) KV v2 store against a real ``bao server -dev`` (tests/openbao.py)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pytest

from ledgerd.platform.secrets.cache import SecretCache
from ledgerd.platform.secrets.ports import SecretNotFoundError, SecretUnreachableError
from ledgerd.platform.secrets.references import parse_reference
from ledgerd.platform.secrets.secret import Secret
from ledgerd.platform.secrets.vault import VaultKvStore
from tests.network import free_port
from tests.openbao import KV_MOUNT, OpenBao, openbao_server


def _path() -> str:
    return f"ledgerd/{secrets.token_hex(4)}"


async def test_reads_a_field_of_the_current_and_of_an_older_version(openbao: OpenBao) -> None:
    path = _path()
    first = openbao.put(path, {"url": "postgresql://app:one@db/ledger", "other": "x"})
    openbao.put(path, {"url": "postgresql://app:two@db/ledger"})
    store = VaultKvStore(openbao.address, Secret(openbao.token))
    try:
        now = await store.read(parse_reference(f"secret://vault/{KV_MOUNT}/{path}#url"))
        then = await store.read(
            parse_reference(f"secret://vault/{KV_MOUNT}/{path}#url?version={first}")
        )
    finally:
        await store.aclose()
    assert now.reveal() == "postgresql://app:two@db/ledger"
    assert then.reveal() == "postgresql://app:one@db/ledger"


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("secret://vault/{mount}/ledgerd/absent#url", "no such secret"),
        ("secret://vault/{mount}/{path}#nosuchfield", "no such field"),
        ("secret://vault/nomount/{path}#url", "HTTP"),
    ],
)
async def test_a_missing_secret_or_field_is_refused_naming_the_reference(
    openbao: OpenBao, reference: str, reason: str
) -> None:
    path = _path()
    openbao.put(path, {"url": "the-value"})
    parsed = parse_reference(reference.format(mount=KV_MOUNT, path=path))
    store = VaultKvStore(openbao.address, Secret(openbao.token))
    try:
        with pytest.raises(SecretNotFoundError, match=reason) as refused:
            await store.read(parsed)
    finally:
        await store.aclose()
    assert str(parsed) in str(refused.value)
    assert "the-value" not in str(refused.value)


async def test_a_wrong_token_is_refused(openbao: OpenBao) -> None:
    path = _path()
    openbao.put(path, {"url": "the-value"})
    store = VaultKvStore(openbao.address, Secret("not-the-token"))
    try:
        with pytest.raises(SecretNotFoundError, match="permission denied"):
            await store.read(parse_reference(f"secret://vault/{KV_MOUNT}/{path}#url"))
    finally:
        await store.aclose()


async def test_a_closed_port_is_unreachable() -> None:
    store = VaultKvStore(f"http://127.0.0.1:{free_port()}", Secret("t"), timeout_s=2)
    try:
        with pytest.raises(SecretUnreachableError, match="did not answer"):
            await store.read(parse_reference("secret://vault/kv/ledgerd/db#url"))
    finally:
        await store.aclose()


async def test_a_rotated_secret_is_picked_up_by_the_next_refresh(openbao: OpenBao) -> None:
    path = _path()
    openbao.put(path, {"url": "before"})
    reference = parse_reference(f"secret://vault/{KV_MOUNT}/{path}#url")
    cache = SecretCache({"vault": VaultKvStore(openbao.address, Secret(openbao.token))}, ttl_s=1)
    try:
        assert (await cache.resolve(reference)).reveal() == "before"
        openbao.put(path, {"url": "after"})
        assert cache.current(reference).reveal() == "before"  # until the refresh
        await cache.refresh()
        assert cache.current(reference).reveal() == "after"
    finally:
        await cache.aclose()


async def test_a_store_gone_away_keeps_the_value_and_warns_once_per_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ledgerd.platform.secrets")
    with openbao_server(tmp_path) as server:
        path = _path()
        server.put(path, {"url": "kept-value"})
        reference = parse_reference(f"secret://vault/{KV_MOUNT}/{path}#url")
        store = VaultKvStore(server.address, Secret(server.token), timeout_s=2)
        cache = SecretCache({"vault": store}, ttl_s=1)
        await cache.resolve(reference)
    try:
        for _ in range(3):
            await cache.refresh()
        assert cache.current(reference).reveal() == "kept-value"
    finally:
        await cache.aclose()
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert str(reference) in warnings[0].getMessage()
    assert "kept-value" not in caplog.text
