"""Failed authentications are limited (429 + Retry-After); secrets and tokens are never logged."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.unit.identity.entrypoints.conftest import OAuthHttp, svc_auth
from tests.unit.identity.oauth_world import ALICE_PASSWORD, SVC_SECRET, VERIFIER

LIMIT = 10


async def _fail_client(oauth: OAuthHttp, client_id: str = "svc") -> httpx.Response:
    return await oauth.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=httpx.BasicAuth(client_id, "wrong-guess"),
    )


async def _good_client(oauth: OAuthHttp) -> httpx.Response:
    return await oauth.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=svc_auth()
    )


@pytest.mark.parametrize("client_id", ["svc", "no-such-client"])
async def test_the_eleventh_guess_is_429_even_with_the_right_secret_alike_for_any_id(
    oauth: OAuthHttp, client_id: str
) -> None:
    for _ in range(LIMIT):
        assert (await _fail_client(oauth, client_id)).status_code == 401

    limited = await _fail_client(oauth, client_id)

    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "300"
    assert limited.json()["error"] == "temporarily_unavailable"
    # The address is limited too: the right secret is not even checked now.
    assert (await _good_client(oauth)).status_code == 429


async def test_the_window_slides(oauth: OAuthHttp) -> None:
    for _ in range(LIMIT):
        await _fail_client(oauth)
        oauth.monotonic.now += 20
    limited = await _fail_client(oauth)
    # The oldest failure is 200 s old: it leaves the 300 s window in 100 s.
    assert limited.headers["retry-after"] == "100"
    oauth.monotonic.now += 100
    assert (await _good_client(oauth)).status_code == 200


async def test_successes_do_not_count(oauth: OAuthHttp) -> None:
    for _ in range(3 * LIMIT):
        assert (await _good_client(oauth)).status_code == 200


async def test_failed_sign_ins_are_limited_per_user_and_address(oauth: OAuthHttp) -> None:
    for _ in range(LIMIT):
        assert (await oauth.sign_in(password="wrong")).status_code == 403
    limited = await oauth.sign_in()
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert "location" not in limited.headers


async def test_no_secret_token_code_or_password_reaches_the_logs(
    oauth: OAuthHttp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await _fail_client(oauth)
    answer = await oauth.sign_in()
    code = answer.headers["location"].split("code=")[1].split("&")[0]
    pair = (await oauth.exchange(code)).json()
    refreshed = (
        await oauth.http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]},
            auth=svc_auth(),
        )
    ).json()
    await oauth.http.post(
        "/oauth2/revoke", data={"token": refreshed["refresh_token"]}, auth=svc_auth()
    )
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "oauth POST /oauth2/token 200" in logged  # the access log is there
    for secret in (
        SVC_SECRET,
        "wrong-guess",
        ALICE_PASSWORD,
        VERIFIER,
        code,
        pair["access_token"],
        pair["refresh_token"],
        refreshed["access_token"],
        refreshed["refresh_token"],
    ):
        assert secret not in logged
