"""Signing keys sealed under ``LEDGERD_SIGNING_KEYS_SECRET``, as an operator runs ``ledgerd``.

Real processes on SQLite (a database at the schema's head, copied rather than migrated by a
process each time: `ledgerd migrate` has tests of its own); the wrapping key is given as a
``secret://`` reference (to an environment variable or a file), and every output is searched
for it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx

from ledgerd.main.contexts.identity import KEYS_UNSEALED
from tests.e2e.grpc.test_serve import LEDGERD, ledgerd_environment, ledgerd_serve, says
from tests.e2e.test_identity_serve import _verified_claims

COMMAND_WAIT_S = 60.0
EXIT_ERROR = 2
KEY_VARIABLE = "LEDGERD_T_WRAPPING_KEY"
REST_LINE = re.compile(r"^REST\s+(http://127\.0\.0\.1:\d+)/")


def _new_wrapping_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def _ledgerd(url: str, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """``ledgerd ARGV``'s exit code and its output (standard output and error together)."""
    process = await asyncio.create_subprocess_exec(
        str(LEDGERD),
        *argv,
        env={**ledgerd_environment(url), **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(COMMAND_WAIT_S):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


def _stored_row(url: str) -> str:
    path = url.removeprefix("sqlite+aiosqlite:///")
    with closing(sqlite3.connect(path)) as connection:
        (stored,) = connection.execute("SELECT key_set FROM identity_signing_keys").fetchone()
    assert isinstance(stored, str)
    return stored


def _one_error_line(output: str) -> str:
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error")]
    assert len(errors) == 1, output
    return errors[0]


async def test_a_plain_set_is_encrypted_by_the_command_and_then_needs_the_key(
    migrated_sqlite_url: str,
) -> None:
    url = migrated_sqlite_url
    wrapping_key = _new_wrapping_key()
    by_reference = {
        KEY_VARIABLE: wrapping_key,
        "LEDGERD_SIGNING_KEYS_SECRET": f"secret://env/{KEY_VARIABLE}",
    }
    code, plain_rotation = await _ledgerd(url, "keys", "rotate")
    assert code == 0, plain_rotation
    assert '"d":' in _stored_row(url)

    code, encrypted = await _ledgerd(url, "keys", "encrypt", env=by_reference)
    assert code == 0, encrypted
    assert "encrypted under wrapping key" in encrypted
    assert '"d":' not in _stored_row(url)
    code, again = await _ledgerd(url, "keys", "encrypt", env=by_reference)
    assert (code, "not rewritten" in again) == (0, True), again
    code, rotated = await _ledgerd(url, "keys", "rotate", env=by_reference)
    assert code == 0, rotated
    assert '"d":' not in _stored_row(url)
    code, listed = await _ledgerd(url, "keys", "list", env=by_reference)
    assert code == 0, listed
    assert [row.split()[1] for row in listed.splitlines()[1:]] == ["current", "retired"]

    half_a_key = base64.b64encode(secrets.token_bytes(16)).decode()
    code, too_short = await _ledgerd(
        url, "keys", "list", env={"LEDGERD_SIGNING_KEYS_SECRET": half_a_key}
    )
    assert code == EXIT_ERROR
    assert "32 random bytes in base64" in _one_error_line(too_short)
    assert half_a_key not in too_short
    code, without_key = await _ledgerd(url, "keys", "list")
    assert code == EXIT_ERROR
    assert _one_error_line(without_key).startswith("error: LEDGERD_SIGNING_KEYS_SECRET: ")
    for output in (encrypted, again, rotated, listed, without_key):
        assert wrapping_key not in output
        assert wrapping_key.rstrip("=") not in output


async def test_a_previous_wrapping_key_opens_and_encrypt_moves_the_set_to_the_current(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    url = migrated_sqlite_url
    old, new = _new_wrapping_key(), _new_wrapping_key()
    key_file = tmp_path / "wrapping-key"
    key_file.write_text(new + "\n")
    assert (await _ledgerd(url, "keys", "rotate", env={"LEDGERD_SIGNING_KEYS_SECRET": old}))[0] == 0
    under_old = json.loads(_stored_row(url))["wrapped_by"]

    rotated_key = {
        "LEDGERD_SIGNING_KEYS_SECRET": f"secret://file{key_file}",
        "LEDGERD_SIGNING_KEYS_SECRET_PREVIOUS": old,
    }
    code, encrypted = await _ledgerd(url, "keys", "encrypt", env=rotated_key)

    assert code == 0, encrypted
    under_new = json.loads(_stored_row(url))["wrapped_by"]
    assert under_new != under_old
    assert under_new in encrypted
    code, old_only = await _ledgerd(url, "keys", "list", env={"LEDGERD_SIGNING_KEYS_SECRET": old})
    assert code == EXIT_ERROR
    line = _one_error_line(old_only)
    assert under_new in line
    assert old not in line


async def test_serve_with_the_wrong_key_says_so_in_one_line_and_exits_2(
    migrated_sqlite_url: str,
) -> None:
    url = migrated_sqlite_url
    right, wrong = _new_wrapping_key(), _new_wrapping_key()
    assert (await _ledgerd(url, "keys", "rotate", env={"LEDGERD_SIGNING_KEYS_SECRET": right}))[
        0
    ] == 0

    code, output = await _ledgerd(
        url,
        "serve",
        env={
            "LEDGERD_SIGNING_KEYS_SECRET": wrong,
            "LEDGERD_GRPC_ADDRESS": "127.0.0.1:0",
            "LEDGERD_HTTP_ADDRESS": "127.0.0.1:0",
        },
    )

    assert code == EXIT_ERROR, output
    line = _one_error_line(output)
    assert line.startswith("error: LEDGERD_SIGNING_KEYS_SECRET: the key set is sealed under")
    assert right not in output
    assert wrong not in output


async def test_serve_warns_once_without_a_key_and_issues_tokens_with_one(tmp_path: Path) -> None:
    plain_url = f"sqlite+aiosqlite:///{tmp_path}/plain.db"
    async with ledgerd_serve(plain_url) as served:
        if not any(says(line, KEYS_UNSEALED) for line in served.output):
            await served.read_until(lambda line: says(line, KEYS_UNSEALED))
    assert sum(says(line, KEYS_UNSEALED) for line in served.output) == 1

    url = f"sqlite+aiosqlite:///{tmp_path}/sealed.db"
    wrapping_key = _new_wrapping_key()
    key_file = tmp_path / "wrapping-key"
    key_file.write_text(wrapping_key)
    sealed = {"LEDGERD_SIGNING_KEYS_SECRET": f"secret://file{key_file}"}
    async with ledgerd_serve(
        url, signing_keys_secret=sealed["LEDGERD_SIGNING_KEYS_SECRET"]
    ) as served:
        rest = REST_LINE.match(await served.read_until(lambda line: bool(REST_LINE.match(line))))
        assert rest is not None
        served.drain()
        code, created = await _ledgerd(
            url, "clients", "create", "payouts", "--scopes", "ledger.read", "--ledgers", "L",
            env=sealed,
        )  # fmt: skip
        assert code == 0, created
        client = json.loads(created)
        async with httpx.AsyncClient(base_url=rest.group(1), timeout=COMMAND_WAIT_S) as http:
            answer = await http.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(client["client_id"], client["client_secret"]),
            )
            assert answer.status_code == 200, answer.text
            published = await http.get("/.well-known/jwks.json")
            assert published.status_code == 200
        claims = _verified_claims(answer.json()["access_token"], published.json())
        assert claims["sub"] == client["client_id"]
        assert '"d":' not in _stored_row(url)
    assert not any(says(line, KEYS_UNSEALED) for line in served.output)
    assert wrapping_key not in served.log
