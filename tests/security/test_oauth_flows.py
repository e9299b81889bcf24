"""The authorization-code flow with PKCE, refresh rotation and brute force, attacked over HTTP.

One ``ledgerd serve`` (``LEDGERD_AUTH=required``, ``LEDGERD_REVOCATION_CACHE_SECONDS=0``,
SQLite) for the module, a user made by ``ledgerd users create`` signing in through the real
login form (CSRF cookie and all), a public client and a confidential one each with a registered
redirect URI. Revocations are checked where they matter: the revoked family's live access token
is refused by the API on both transports, and the money it tried to move stays where it was.

Elsewhere: two simultaneous refreshes on PostgreSQL, exactly one winner
(``tests/integration/identity/test_refresh_on_databases.py``); the login form's CSRF checks and
its own brute-force limit (``tests/unit/identity/entrypoints/test_authorize_endpoint.py``,
``test_brute_force_and_logs.py``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio

from tests.security.deployment import ALL_SCOPES, LEDGER, Client, Deployment, deployment, leaked

pytestmark = pytest.mark.asyncio(loop_scope="module")

USER = "alice"
PUBLIC_REDIRECT = "https://app.example/callback"
WEB_REDIRECT = "https://web.example/callback"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
REDIRECTS = {302, 303}
REVOKED = "access token refused: revoked"
# The limit of failed client authentications per client id and per address (5 minutes).
FAILURE_LIMIT = 10


@dataclass
class World:
    served: Deployment
    admin: str
    password: str
    spa: Client  # public: no secret
    web: Client  # confidential, with a redirect URI


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    database = tmp_path_factory.mktemp("oauth") / "ledgerd.db"
    async with deployment(f"sqlite+aiosqlite:///{database}") as served:
        admin = await served.token(await served.client("admin", "--all-ledgers"))
        await served.books(admin)
        password = secrets.token_urlsafe(18)
        served.credentials.append(password)
        await served.ledgerd(
            "users",
            "create",
            USER,
            "--scopes",
            ",".join(ALL_SCOPES),
            "--ledgers",
            LEDGER,
            stdin=password + "\n",
        )
        spa = await served.client(
            "spa", "--public", "--redirect-uri", PUBLIC_REDIRECT, "--ledgers", LEDGER
        )
        web = await served.client("web", "--redirect-uri", WEB_REDIRECT, "--ledgers", LEDGER)
        yield World(served, admin, password, spa, web)


def _pkce() -> tuple[str, str]:
    """A verifier and its S256 challenge (RFC 7636 4.1, 4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _authorize_query(client: Client, redirect_uri: str, challenge: str | None) -> dict[str, str]:
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "state": "st-1",
        "code_challenge_method": "S256",
    }
    if challenge is not None:
        query["code_challenge"] = challenge
    return query


def _redirect_query(answer: httpx.Response) -> tuple[str, dict[str, list[str]]]:
    """Where the answer redirects to (without its query), and the query."""
    assert answer.status_code in REDIRECTS, answer.text
    location = urlsplit(answer.headers["location"])
    return f"{location.scheme}://{location.netloc}{location.path}", parse_qs(location.query)


async def _code(world: World, client: Client, redirect_uri: str) -> tuple[str, str]:
    """A code for ``client``, through the login form as a browser fills it; and its verifier."""
    http = world.served.http
    verifier, challenge = _pkce()
    page = await http.get(
        "/oauth2/authorize", params=_authorize_query(client, redirect_uri, challenge)
    )
    assert page.status_code == 200, page.text
    form = {name: value.replace("&amp;", "&") for name, value in HIDDEN.findall(page.text)}
    form |= {"username": USER, "password": world.password, "decision": "allow"}
    cookie = page.cookies["ledgerd_csrf"]
    answer = await http.post(
        "/oauth2/authorize", data=form, headers={"cookie": f"ledgerd_csrf={cookie}"}
    )
    target, query = _redirect_query(answer)
    assert target == redirect_uri
    (code,) = query["code"]
    world.served.credentials.extend([code, verifier])
    return code, verifier


async def _exchange(
    world: World, client: Client, code: str, verifier: str, redirect_uri: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    if client.secret:
        return await world.served.http.post("/oauth2/token", data=form, auth=client.basic)
    # A public client names itself and has nothing to authenticate with.
    return await world.served.http.post(
        "/oauth2/token", data={**form, "client_id": client.client_id}
    )


def _tokens(world: World, answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    pair: dict[str, Any] = answer.json()
    world.served.credentials.extend(
        str(pair[name]) for name in ("access_token", "refresh_token") if name in pair
    )
    return pair


async def _refresh(
    world: World, refresh_token: str, client: Client | None = None
) -> httpx.Response:
    """A refresh by ``client`` (web unless told): Basic if it has a secret, else its id alone."""
    client = client or world.web
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if client.secret:
        return await world.served.http.post("/oauth2/token", data=form, auth=client.basic)
    return await world.served.http.post(
        "/oauth2/token", data={**form, "client_id": client.client_id}
    )


def _refused_grant(answer: httpx.Response, error: str = "invalid_grant") -> None:
    """An RFC 6749 5.2 refusal that carries no token."""
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == error
    assert "access_token" not in answer.text
    assert "refresh_token" not in answer.text


async def _usable(world: World, access_token: str) -> bool:
    headers = {"authorization": f"Bearer {access_token}"}
    answer = await world.served.http.get(
        f"/v1/ledgers/{LEDGER}/accounts/alice/balance", headers=headers
    )
    assert answer.status_code in {200, 401}, answer.text
    return answer.status_code == 200


async def _refused_as_revoked_on_both(world: World, access_token: str) -> None:
    """The token moves no money on either transport: UNAUTHENTICATED, revoked."""
    served = world.served
    before = await served.snapshot(world.admin)
    rest = await served.post_over_rest(f"Bearer {access_token}")
    grpc_ = await served.post_over_grpc(f"Bearer {access_token}")
    assert rest is not None
    assert grpc_ is not None
    assert (rest.status, rest.code, rest.message) == (401, "UNAUTHENTICATED", REVOKED)
    assert (grpc_.status, grpc_.code, grpc_.message) == (
        "UNAUTHENTICATED",
        "UNAUTHENTICATED",
        REVOKED,
    )
    assert await served.snapshot(world.admin) == before


# --- authorize: PKCE and the redirect URI ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "challenge"),
    [
        ("plain", "a" * 43),  # RFC 7636 plain: the verifier itself, seen by whoever saw this
        ("S256", None),  # no challenge at all
        ("S256", "too-short"),  # no S256 value
        ("s256", "a" * 43),  # the method's name is exact
    ],
)
async def test_pkce_other_than_s256_with_a_challenge_is_refused_with_no_code(
    world: World, method: str, challenge: str | None
) -> None:
    query = _authorize_query(world.spa, PUBLIC_REDIRECT, challenge)
    query["code_challenge_method"] = method
    answer = await world.served.http.get("/oauth2/authorize", params=query)
    target, returned = _redirect_query(answer)
    # The redirect URI is registered, so the error goes back to it (RFC 6749 4.1.2.1).
    assert target == PUBLIC_REDIRECT
    assert returned["error"] == ["invalid_request"]
    assert returned["state"] == ["st-1"]
    assert "code" not in returned


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        PUBLIC_REDIRECT + "/more",
        PUBLIC_REDIRECT + "?next=https://evil.example",
        PUBLIC_REDIRECT.upper(),
        PUBLIC_REDIRECT.replace("https", "http"),
    ],
)
async def test_a_redirect_uri_not_registered_gets_an_error_page_never_a_redirect(
    world: World, redirect_uri: str
) -> None:
    _verifier, challenge = _pkce()
    answer = await world.served.http.get(
        "/oauth2/authorize", params=_authorize_query(world.spa, redirect_uri, challenge)
    )
    assert answer.status_code == 400, answer.text
    assert "location" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")
    assert "ledgerd_csrf" not in answer.cookies


async def test_a_wrong_verifier_or_redirect_uri_is_invalid_grant_and_leaves_the_code(
    world: World,
) -> None:
    code, verifier = await _code(world, world.spa, PUBLIC_REDIRECT)
    other_verifier, _challenge = _pkce()
    _refused_grant(await _exchange(world, world.spa, code, other_verifier, PUBLIC_REDIRECT))
    # The challenge itself, sent as the verifier (what 'plain' would accept), is wrong too.
    challenge = _pkce_challenge(verifier)
    _refused_grant(await _exchange(world, world.spa, code, challenge, PUBLIC_REDIRECT))
    _refused_grant(await _exchange(world, world.spa, code, verifier, PUBLIC_REDIRECT + "/x"))
    # Another client cannot redeem it either.
    _refused_grant(await _exchange(world, world.web, code, verifier, PUBLIC_REDIRECT))
    # None of the refusals spent the code: its owner, with the right verifier, still can.
    pair = _tokens(world, await _exchange(world, world.spa, code, verifier, PUBLIC_REDIRECT))
    assert await _usable(world, pair["access_token"])


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- reuse: codes and refresh tokens --------------------------------------------------------


async def test_a_reused_code_is_refused_and_the_tokens_it_issued_are_revoked(
    world: World,
) -> None:
    code, verifier = await _code(world, world.web, WEB_REDIRECT)
    pair = _tokens(world, await _exchange(world, world.web, code, verifier, WEB_REDIRECT))
    assert await _usable(world, pair["access_token"])

    _refused_grant(await _exchange(world, world.web, code, verifier, WEB_REDIRECT))

    await _refused_as_revoked_on_both(world, pair["access_token"])
    _refused_grant(await _refresh(world, pair["refresh_token"]))


async def test_a_reused_refresh_token_revokes_the_family_and_its_live_access_token(
    world: World,
) -> None:
    code, verifier = await _code(world, world.web, WEB_REDIRECT)
    first = _tokens(world, await _exchange(world, world.web, code, verifier, WEB_REDIRECT))
    second = _tokens(world, await _refresh(world, first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"]
    assert await _usable(world, second["access_token"])

    # The spent token again: whoever holds it, the family is over.
    _refused_grant(await _refresh(world, first["refresh_token"]))

    await _refused_as_revoked_on_both(world, second["access_token"])
    await _refused_as_revoked_on_both(world, first["access_token"])
    _refused_grant(await _refresh(world, second["refresh_token"]))


async def test_a_public_client_refreshes_by_its_id_and_reuse_ends_its_family(
    world: World,
) -> None:
    code, verifier = await _code(world, world.spa, PUBLIC_REDIRECT)
    first = _tokens(world, await _exchange(world, world.spa, code, verifier, PUBLIC_REDIRECT))

    second = _tokens(world, await _refresh(world, first["refresh_token"], world.spa))

    assert second["refresh_token"] != first["refresh_token"]
    assert await _usable(world, second["access_token"])
    # Another client cannot use the family: unknown to it, and the family goes on.
    _refused_grant(await _refresh(world, second["refresh_token"], world.web))
    assert await _usable(world, second["access_token"])

    # The spent token again, as a thief who copied it from the app would send it.
    _refused_grant(await _refresh(world, first["refresh_token"], world.spa))

    await _refused_as_revoked_on_both(world, second["access_token"])
    _refused_grant(await _refresh(world, second["refresh_token"], world.spa))


# --- brute force: last but one, since it locks this address out of the token endpoint -------


async def test_guessing_a_secret_is_stopped_with_429_and_retry_after(world: World) -> None:
    http = world.served.http
    form = {"grant_type": "client_credentials"}
    for _ in range(FAILURE_LIMIT):
        guess = httpx.BasicAuth(world.web.client_id, secrets.token_urlsafe(32))
        answer = await http.post("/oauth2/token", data=form, auth=guess)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "invalid_client"

    guess = httpx.BasicAuth(world.web.client_id, secrets.token_urlsafe(32))
    limited = await http.post("/oauth2/token", data=form, auth=guess)
    assert limited.status_code == 429, limited.text
    assert 0 < int(limited.headers["retry-after"]) <= 300
    assert limited.json()["error"] == "temporarily_unavailable"
    # Now even the right secret is not checked: a guess that hits gets no token either.
    right = await http.post("/oauth2/token", data=form, auth=world.web.basic)
    assert right.status_code == 429, right.text
    assert "access_token" not in right.text
    # Nor does another client id from this address: the address is limited too.
    other = httpx.BasicAuth("no-such-client", secrets.token_urlsafe(32))
    assert (await http.post("/oauth2/token", data=form, auth=other)).status_code == 429


async def test_no_secret_password_code_or_token_reached_the_server_output(world: World) -> None:
    # Last in the module on purpose: it greps what every flow above made the server print.
    served = world.served
    assert world.password in served.credentials
    assert leaked(served) == [], served.served.log
