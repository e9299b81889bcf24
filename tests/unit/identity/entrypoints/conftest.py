"""The OAuth2 ASGI app on the fakes, spoken to over real HTTP framing (httpx.ASGITransport)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ledgerd.identity.entrypoints.failure_limits import DEFAULT_FAILURE_LIMIT, FailureLimiter
from ledgerd.identity.entrypoints.oauth_app import OAuthHttpApp, OAuthHttpSettings, OAuthUseCases
from tests.unit.identity.oauth_world import (
    ALICE_PASSWORD,
    ISSUER,
    SPA_REDIRECT,
    SVC_REDIRECT,
    SVC_SECRET,
    VERIFIER,
    OAuthWorld,
    oauth_world,
)

ADDRESS = "203.0.113.7"
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class OAuthHttp:
    world: OAuthWorld
    http: httpx.AsyncClient
    monotonic: Monotonic

    def authorize_query(self, **overrides: str | None) -> dict[str, str]:
        parameters = self.world.parameters()
        query = {
            "response_type": parameters.response_type,
            "client_id": parameters.client_id,
            "redirect_uri": parameters.redirect_uri,
            "code_challenge": parameters.code_challenge,
            "code_challenge_method": parameters.code_challenge_method,
            "state": parameters.state,
            **overrides,
        }
        return {name: value for name, value in query.items() if value is not None}

    async def login_form(self, **overrides: str | None) -> tuple[dict[str, str], str]:
        """The hidden fields of the login form and the CSRF cookie it set."""
        page = await self.http.get("/oauth2/authorize", params=self.authorize_query(**overrides))
        assert page.status_code == 200, page.text
        cookie = page.cookies["ledgerd_csrf"]
        fields = {name: value.replace("&amp;", "&") for name, value in _HIDDEN.findall(page.text)}
        return fields, cookie

    async def sign_in(
        self, password: str = ALICE_PASSWORD, username: str = "alice", **overrides: str | None
    ) -> httpx.Response:
        fields, cookie = await self.login_form(**overrides)
        form = {**fields, "username": username, "password": password, "decision": "allow"}
        return await self.http.post(
            "/oauth2/authorize", data=form, headers={"cookie": f"ledgerd_csrf={cookie}"}
        )

    async def code(self) -> str:
        answer = await self.sign_in()
        assert answer.status_code == 303, answer.text
        return redirect_query(answer)["code"]

    async def exchange(self, code: str, /, **overrides: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": SVC_REDIRECT,
            "code_verifier": VERIFIER,
            **overrides,
        }
        return await self.http.post("/oauth2/token", data=form, auth=svc_auth())

    async def public_pair(self) -> dict[str, str]:
        """The token pair the public client spa gets: code flow, then ``client_id`` alone."""
        answer = await self.sign_in(client_id="spa", redirect_uri=SPA_REDIRECT)
        assert answer.status_code == 303, answer.text
        exchanged = await self.http.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "client_id": "spa",
                "code": redirect_query(answer)["code"],
                "redirect_uri": SPA_REDIRECT,
                "code_verifier": VERIFIER,
            },
        )
        assert exchanged.status_code == 200, exchanged.text
        pair: dict[str, str] = exchanged.json()
        return pair


def svc_auth() -> httpx.BasicAuth:
    return httpx.BasicAuth("svc", SVC_SECRET)


def redirect_query(response: httpx.Response) -> dict[str, str]:
    query = parse_qs(urlsplit(response.headers["location"]).query, strict_parsing=True)
    return {name: values[0] for name, values in query.items()}


@pytest.fixture
async def oauth() -> AsyncIterator[OAuthHttp]:
    async with serve(await oauth_world()) as served:
        yield served


@asynccontextmanager
async def serve(
    world: OAuthWorld, use_cases: OAuthUseCases | None = None
) -> AsyncIterator[OAuthHttp]:
    """The app over ``world`` (its use cases, or ``use_cases``), with an HTTP client to it."""
    monotonic = Monotonic()
    app = OAuthHttpApp(
        use_cases=use_cases or world.use_cases,
        settings=OAuthHttpSettings(issuer=ISSUER, csrf_key=b"k" * 32),
        keys=world.keys,
        clock=world.clock,
        client_failures=FailureLimiter(DEFAULT_FAILURE_LIMIT, monotonic=monotonic),
        user_failures=FailureLimiter(DEFAULT_FAILURE_LIMIT, monotonic=monotonic),
        wall_clock_s=lambda: world.clock.now().timestamp(),
    )
    transport = httpx.ASGITransport(app=app, client=(ADDRESS, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        yield OAuthHttp(world, http, monotonic)
