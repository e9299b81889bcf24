"""``ledgerd serve`` with the identity context: tokens over real HTTP, keys rotated while serving.

A real process on SQLite; the client is made with ``ledgerd clients create`` and the keys are
rotated with ``ledgerd keys rotate``, each a process of its own, as an operator runs them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

if TYPE_CHECKING:
    from joserfc.jwk import KeySetSerialization

from tests.e2e.grpc.test_serve import LEDGERD, ledgerd_environment, ledgerd_serve, says

ISSUER = "http://ledgerd.test"
RELOAD_INTERVAL_S = 0.5
# Upper bounds so that a hung process or a reload that never comes fails the test.
COMMAND_WAIT_S = 60.0
RELOAD_WAIT_S = 20.0
REST_LINE = re.compile(r"^REST\s+(http://127\.0\.0\.1:\d+)/")


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str


async def _ledgerd(url: str, *argv: str) -> str:
    """``ledgerd ARGV`` to its end; its standard output (it must succeed)."""
    process = await asyncio.create_subprocess_exec(
        str(LEDGERD),
        *argv,
        env=ledgerd_environment(url, token_issuer=ISSUER),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(COMMAND_WAIT_S):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def _token(http: httpx.AsyncClient, client: Client) -> str:
    answer = await http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.secret),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer"
    token: str = body["access_token"]
    return token


async def _jwks(http: httpx.AsyncClient) -> dict[str, Any]:
    answer = await http.get("/.well-known/jwks.json")
    assert answer.status_code == 200, answer.text
    keys: dict[str, Any] = answer.json()
    return keys


async def _published(http: httpx.AsyncClient, *, keys: int) -> dict[str, Any]:
    """The JWKS once it lists ``keys`` keys: the server reloads its set every interval."""
    poll_s = RELOAD_INTERVAL_S / 2
    for _attempt in range(int(RELOAD_WAIT_S / poll_s)):
        published = await _jwks(http)
        if len(published["keys"]) >= keys:
            return published
        await asyncio.sleep(poll_s)
    msg = f"the JWKS did not list {keys} keys within {RELOAD_WAIT_S} s"
    raise AssertionError(msg)


def _kid(token: str) -> str:
    header = token.split(".", 1)[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid


def _verified_claims(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """The claims, once the signature checks against the published keys (by the token's kid)."""
    key_set = KeySet.import_key_set(cast("KeySetSerialization", jwks))
    decoded = jwt.decode(token, key_set, algorithms=["Ed25519"])
    return decoded.claims


async def test_a_client_gets_a_token_that_verifies_and_a_rotation_reaches_the_server(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/served.db"
    async with ledgerd_serve(
        url, token_issuer=ISSUER, key_reload_interval_seconds=str(RELOAD_INTERVAL_S)
    ) as served:
        rest = REST_LINE.match(await served.read_until(lambda line: bool(REST_LINE.match(line))))
        assert rest is not None
        served.drain()
        created = json.loads(
            await _ledgerd(
                url, "clients", "create", "payouts", "--scopes", "ledger.read", "--ledgers", "L"
            )
        )
        client = Client(created["client_id"], created["client_secret"])
        async with httpx.AsyncClient(base_url=rest.group(1), timeout=COMMAND_WAIT_S) as http:
            first = await _token(http, client)
            before = await _jwks(http)
            claims = _verified_claims(first, before)
            assert (claims["iss"], claims["aud"], claims["sub"]) == (
                ISSUER,
                "ledgerd",
                client.client_id,
            )
            assert (claims["scope"], claims["ledgers"]) == ("ledger.read", ["L"])
            assert [key["kid"] for key in before["keys"]] == [_kid(first)]

            rotated = await _ledgerd(url, "keys", "rotate")
            new_kid = re.search(r"signing with (\S+)", rotated)
            assert new_kid is not None
            after = await _published(http, keys=2)

            assert [key["kid"] for key in after["keys"]] == [new_kid.group(1), _kid(first)]
            second = await _token(http, client)
            assert _kid(second) == new_kid.group(1)
            assert _verified_claims(second, after)["sub"] == client.client_id
            # A token of the retired key still verifies during its overlap.
            assert _verified_claims(first, after)["jti"] == claims["jti"]

        reloads = [
            line for line in served.output if says(line, "signing keys reloaded: key set version 2")
        ]
        assert len(reloads) == 1, served.log
        # The secret went to the operator's terminal only.
        assert client.secret not in served.log
        assert first not in served.log
