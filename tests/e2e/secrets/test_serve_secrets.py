"""``ledgerd serve`` and ``migrate`` whose settings are ``secret://`` references.

Real processes, a real OpenBao (tests/openbao.py), moto's server (an AWS emulator), the local
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from ledgerd.platform.outbox.listener import LISTENER_APPLICATION_NAME
from ledgerd.v1 import ledger_pb2 as pb
from tests.e2e.grpc.test_serve import (
    CALL_TIMEOUT_S,
    LOG_RECORD,
    client,
    ledgerd_serve,
)
from tests.e2e.secrets.support import run_ledgerd
from tests.integration.messaging.sqs_emulator import REGION, emulated_aws
from tests.network import free_port
from tests.openbao import KV_MOUNT, OpenBao, openbao_server

EXIT_ERROR = 2
EXIT_UNREACHABLE = 3


def _vault_settings(server: OpenBao, **more: str) -> dict[str, str]:
    return {"vault_addr": server.address, "vault_token": server.token, **more}


@asynccontextmanager
async def _login_roles(server_url: str, database_url: str) -> AsyncIterator[tuple[str, str]]:
    """Two login roles for ``database_url``, both dropped on the way out.

    The first owns the database; the second acts as the first (a rotated credential).
    """
    first, second = (f"ledgerd_t_role_{secrets.token_hex(4)}" for _ in range(2))
    database = make_url(database_url).database
    admin = await _admin(server_url)
    try:
        for role in (first, second):
            await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{secrets.token_hex(12)}'")
        await admin.execute(f"ALTER DATABASE {database} OWNER TO {first}")
        await admin.execute(f"GRANT {first} TO {second}")
        yield first, second
    finally:
        owned = await _admin(database_url)
        await owned.execute(f"REASSIGN OWNED BY {first}, {second} TO CURRENT_USER")
        await owned.execute(f"DROP OWNED BY {first}, {second}")
        await owned.close()
        await admin.execute(f"ALTER DATABASE {database} OWNER TO CURRENT_USER")
        await admin.execute(f"DROP ROLE IF EXISTS {first}, {second}")
        await admin.close()


async def _admin(url: str) -> asyncpg.Connection:
    parsed = make_url(url).set(drivername="postgresql")
    connection: asyncpg.Connection = await asyncpg.connect(
        parsed.render_as_string(hide_password=False)
    )
    return connection


def _as(url: str, role: str, password: str) -> str:
    return make_url(url).set(username=role, password=password).render_as_string(hide_password=False)


async def _create_ledger(port: int, ledger: str) -> None:
    async with client(port) as (stub, _):
        await stub.CreateLedger(pb.CreateLedgerRequest(id=ledger), timeout=CALL_TIMEOUT_S)


# Writes a new value of the database URL's secret in its store.
PutUrl = Callable[[str], Awaitable[None]]


async def _serve_through_a_rotation(
    reference: str,
    put: PutUrl,
    postgres_server_url: str,
    database_url: str,
    **settings: str,
) -> None:
    """``migrate`` and ``serve`` on ``reference``; the URL rotated to another role under it.

    The first role is then locked out and its sessions ended, so the call after the rotation
    runs on a connection opened with the rotated URL, or fails.
    """
    async with _login_roles(postgres_server_url, database_url) as (first, second):
        first_password, second_password = "first-" + secrets.token_hex(8), "second-pw"
        admin = await _admin(postgres_server_url)
        await admin.execute(f"ALTER ROLE {first} PASSWORD '{first_password}'")
        await admin.execute(f"ALTER ROLE {second} PASSWORD '{second_password}'")
        await admin.close()
        await put(_as(database_url, first, first_password))
        settings = {"secret_ttl_seconds": "1", **settings}

        migrated, output = await run_ledgerd("migrate", reference, **settings)
        assert migrated == 0, output
        async with ledgerd_serve(reference, **settings) as served:
            await _create_ledger(served.port, "L1")
            await put(_as(database_url, second, second_password))
            await asyncio.sleep(2.5)  # two refreshes of LEDGERD_SECRET_TTL_SECONDS=1
            admin = await _admin(postgres_server_url)
            await admin.execute(f"ALTER ROLE {first} NOLOGIN")
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", first
            )
            # The pool's sessions: the outbox listener, cut off too, reconnects at once (with
            # the rotated URL), and is not what this is about.
            pooled = (
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE usename = $1 AND application_name <> $2"
            )
            sessions = await admin.fetchval(pooled, second, LISTENER_APPLICATION_NAME)
            await _create_ledger(served.port, "L2")
            in_use = await admin.fetchval(pooled, second, LISTENER_APPLICATION_NAME)
            await admin.close()
            served.process.send_signal(signal.SIGTERM)
            exit_code = await served.wait_for_exit()
    assert exit_code == 0, served.log
    assert (sessions, in_use > 0) == (0, True)
    log = output + served.log
    assert first_password not in log
    assert second_password not in log
    assert any(f"secret {reference} changed" in line for line in served.output), served.log


async def test_serve_reads_its_database_url_from_openbao_and_follows_a_rotation(
    openbao: OpenBao, postgres_server_url: str, postgres_url_factory: Callable[[], str]
) -> None:
    path = f"ledgerd/db-{secrets.token_hex(4)}"

    async def put(url: str) -> None:
        openbao.put(path, {"url": url})

    await _serve_through_a_rotation(
        f"secret://vault/{KV_MOUNT}/{path}#url",
        put,
        postgres_server_url,
        postgres_url_factory(),
        **_vault_settings(openbao),
    )


@pytest.fixture(scope="module")
def aws_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Moto's server, an AWS emulator, with dummy credentials (ledgerd inherits them)."""
    with emulated_aws(tmp_path_factory.mktemp("moto") / "server.log") as endpoint:
        yield endpoint


async def test_serve_reads_its_database_url_from_aws_and_follows_a_rotation(
    aws_emulator: str, postgres_server_url: str, postgres_url_factory: Callable[[], str]
) -> None:
    name = f"ledgerd/db-{secrets.token_hex(4)}"

    async def put(url: str) -> None:
        async with get_session().create_client(
            "secretsmanager", region_name=REGION, endpoint_url=aws_emulator
        ) as manager:
            value = json.dumps({"url": url})
            try:
                await manager.put_secret_value(SecretId=name, SecretString=value)
            except manager.exceptions.ResourceNotFoundException:
                await manager.create_secret(Name=name, SecretString=value)

    await _serve_through_a_rotation(
        f"secret://aws/{name}#url",
        put,
        postgres_server_url,
        postgres_url_factory(),
        aws_region=REGION,
        aws_endpoint_url=aws_emulator,
    )


@pytest.mark.parametrize("command", ["serve", "migrate"])
async def test_an_unreachable_store_at_start_up_is_one_line_naming_the_reference(
    command: str,
) -> None:
    reference = "secret://vault/kv/ledgerd/db#url"
    code, output = await run_ledgerd(
        command,
        reference,
        vault_addr=f"http://127.0.0.1:{free_port()}",
        vault_token="token-" + secrets.token_hex(8),
    )
    assert code == EXIT_UNREACHABLE, output
    assert output.splitlines() == [
        f"error: LEDGERD_DATABASE_URL: secret {reference}: the store did not answer (ConnectError)"
    ]


async def test_a_vault_reference_without_a_vault_is_one_line_saying_what_to_set() -> None:
    code, output = await run_ledgerd("migrate", "secret://vault/kv/ledgerd/db#url")
    assert code == EXIT_ERROR, output
    what_to_set = "set LEDGERD_VAULT_ADDR and LEDGERD_VAULT_TOKEN to read it"
    assert output.splitlines() == [
        f"error: LEDGERD_DATABASE_URL: secret://vault/kv/ledgerd/db#url: {what_to_set}"
    ]


@pytest.mark.parametrize(
    ("variable", "value", "shape"),
    [
        ("database_url", "secret://vault/kv/ledgerd/db", "secret://vault/MOUNT/PATH#FIELD"),
        ("redis_url", "secret://aws/db?stage=p@ssw0rd&x=1", "secret://aws/SECRET_ID"),
        ("csrf_key", "secret://file/../p@ssw0rd", "secret://file/ABSOLUTE/PATH"),
    ],
)
async def test_a_malformed_reference_is_a_settings_error_naming_the_variable(
    tmp_path: Path, variable: str, value: str, shape: str
) -> None:
    settings = {variable: value}
    database_url = settings.pop("database_url", f"sqlite+aiosqlite:///{tmp_path}/l.db")
    code, output = await run_ledgerd("migrate", database_url, **settings)
    assert code == EXIT_ERROR, output
    [line] = output.splitlines()
    assert line.startswith(f"error: LEDGERD_{variable.upper()}: malformed secret reference")
    assert shape in line
    assert value not in line


async def test_a_csrf_key_from_a_file_and_a_plain_value_in_a_secret_file_never_show(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "csrf"
    key_file.write_text("too-short-key\n")
    code, output = await run_ledgerd(
        "migrate", f"sqlite+aiosqlite:///{tmp_path}/l.db", csrf_key=f"secret://file{key_file}"
    )
    assert code == EXIT_ERROR, output
    too_short = "must be a random secret of 32 characters or more"
    assert output.splitlines() == [f"error: LEDGERD_CSRF_KEY: secret://file{key_file}: {too_short}"]
    assert "too-short-key" not in output


async def test_a_store_going_away_while_serving_is_one_warning_and_serving_goes_on(
    tmp_path: Path,
) -> None:
    path = "ledgerd/db"
    reference = f"secret://vault/{KV_MOUNT}/{path}#url"
    with contextlib.ExitStack() as openbao_running:
        server = openbao_running.enter_context(openbao_server(tmp_path))
        server.put(path, {"url": f"sqlite+aiosqlite:///{tmp_path}/served.db"})
        settings = _vault_settings(server, secret_ttl_seconds="1")
        async with ledgerd_serve(reference, **settings) as served:
            served.drain()
            await _create_ledger(served.port, "L1")
            openbao_running.close()  # OpenBao goes away
            await asyncio.sleep(3.5)  # three refreshes fail
            await _create_ledger(served.port, "L2")
            served.process.send_signal(signal.SIGTERM)
            exit_code = await served.wait_for_exit()
    assert exit_code == 0, served.log
    warnings = [
        record
        for line in served.output
        if (record := LOG_RECORD.match(line)) and record["level"] == "WARNING"
        if reference in record["message"]
    ]
    assert len(warnings) == 1, served.log
    assert "keeping the value read before" in warnings[0]["message"]
    assert "served.db" not in served.log
