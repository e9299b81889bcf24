"""GET/POST /oauth2/authorize over HTTP: the login form, CSRF, redirects and error pages."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.identity.entrypoints.conftest import OAuthHttp, redirect_query
from tests.unit.identity.oauth_world import ISSUER, SPA_REDIRECT, SVC_REDIRECT


async def test_the_form_is_plain_html_with_the_request_carried_and_the_page_locked_down(
    oauth: OAuthHttp,
) -> None:
    page = await oauth.http.get("/oauth2/authorize", params=oauth.authorize_query())
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    fields, _ = await oauth.login_form()
    assert {"client_id", "redirect_uri", "code_challenge", "state", "csrf_token"} <= set(fields)


async def test_everything_shown_is_escaped(oauth: OAuthHttp) -> None:
    page = await oauth.http.get(
        "/oauth2/authorize", params=oauth.authorize_query(state='"><script>alert(1)</script>')
    )
    # The client's name is "Service <b>One</b>" in storage.
    assert "Service &lt;b&gt;One&lt;/b&gt;" in page.text
    assert "<script>" not in page.text
    assert "&quot;&gt;&lt;script&gt;" in page.text


async def test_signing_in_redirects_with_a_code_the_state_and_the_issuer(
    oauth: OAuthHttp,
) -> None:
    answer = await oauth.sign_in()
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(SVC_REDIRECT + "?")
    query = redirect_query(answer)
    assert set(query) == {"code", "state", "iss"}
    assert (query["state"], query["iss"]) == ("st-1", ISSUER)


async def test_a_redirect_uri_with_a_query_keeps_it(oauth: OAuthHttp) -> None:
    answer = await oauth.sign_in(client_id="spa", redirect_uri=SPA_REDIRECT)
    assert answer.headers["location"].startswith(SPA_REDIRECT + "&code=")


@pytest.mark.parametrize(
    "overrides",
    [
        {"redirect_uri": "https://evil.test/callback"},
        {"redirect_uri": SVC_REDIRECT + "/extra"},
        {"redirect_uri": None},
        {"client_id": "no-such-client"},
        {"client_id": None},
    ],
)
async def test_an_unregistered_redirect_uri_gets_an_error_page_never_a_redirect(
    oauth: OAuthHttp, overrides: dict[str, str | None]
) -> None:
    page = await oauth.http.get("/oauth2/authorize", params=oauth.authorize_query(**overrides))
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "evil.test" not in page.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"scope": "ledgers.admin"}, "invalid_scope"),
        ({"scope": "not-a-scope"}, "invalid_scope"),
    ],
)
async def test_other_errors_go_to_the_good_redirect_uri_with_the_state(
    oauth: OAuthHttp, overrides: dict[str, str | None], error: str
) -> None:
    answer = await oauth.http.get("/oauth2/authorize", params=oauth.authorize_query(**overrides))
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(SVC_REDIRECT + "?")
    query = redirect_query(answer)
    assert (query["error"], query["state"]) == (error, "st-1")
    assert "code" not in query


async def test_a_repeated_parameter_is_refused_with_a_page(oauth: OAuthHttp) -> None:
    query = oauth.authorize_query()
    url = "/oauth2/authorize?" + "&".join(f"{k}={v}" for k, v in query.items())
    page = await oauth.http.get(url + "&redirect_uri=https://evil.test/")
    assert page.status_code == 400
    assert "location" not in page.headers


async def test_denying_redirects_access_denied(oauth: OAuthHttp) -> None:
    fields, cookie = await oauth.login_form()
    answer = await oauth.http.post(
        "/oauth2/authorize",
        data={**fields, "decision": "deny"},
        headers={"cookie": f"ledgerd_csrf={cookie}"},
    )
    assert redirect_query(answer)["error"] == "access_denied"


@pytest.mark.parametrize(("username", "password"), [("alice", "wrong"), ("nobody", "x")])
async def test_a_failed_sign_in_shows_the_form_again_alike(
    oauth: OAuthHttp, username: str, password: str
) -> None:
    answer = await oauth.sign_in(password=password, username=username)
    assert answer.status_code == 403
    assert "Wrong username or password." in answer.text
    assert "location" not in answer.headers


class TestCsrf:
    async def test_a_post_without_the_cookie_is_refused(self, oauth: OAuthHttp) -> None:
        fields, _ = await oauth.login_form()
        oauth.http.cookies.clear()
        answer = await oauth.http.post(
            "/oauth2/authorize",
            data={**fields, "username": "alice", "password": "x", "decision": "allow"},
        )
        assert answer.status_code == 403
        assert "location" not in answer.headers

    async def test_a_token_for_another_cookie_is_refused(self, oauth: OAuthHttp) -> None:
        fields, _ = await oauth.login_form()
        answer = await oauth.http.post(
            "/oauth2/authorize",
            data={**fields, "decision": "deny"},
            headers={"cookie": "ledgerd_csrf=" + "A" * 43},
        )
        assert answer.status_code == 403

    async def test_a_forged_token_is_refused(self, oauth: OAuthHttp) -> None:
        fields, cookie = await oauth.login_form()
        expires, _mac = fields["csrf_token"].split(".")
        answer = await oauth.http.post(
            "/oauth2/authorize",
            data={**fields, "csrf_token": f"{int(expires) + 9999}.{_mac}", "decision": "deny"},
            headers={"cookie": f"ledgerd_csrf={cookie}"},
        )
        assert answer.status_code == 403

    async def test_an_expired_form_is_refused(self, oauth: OAuthHttp) -> None:
        fields, cookie = await oauth.login_form()
        oauth.world.clock.advance(timedelta(minutes=11))
        answer = await oauth.http.post(
            "/oauth2/authorize",
            data={**fields, "decision": "deny"},
            headers={"cookie": f"ledgerd_csrf={cookie}"},
        )
        assert answer.status_code == 403
