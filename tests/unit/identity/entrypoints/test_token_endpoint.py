"""POST /oauth2/token over HTTP: the three grants, client authentication, RFC 6749 §5.2 errors."""

from __future__ import annotations

import base64

import httpx
import pytest

from ledgerd.platform.auth.access_tokens import AccessTokenRejectedError
from tests.unit.identity.entrypoints.conftest import OAuthHttp, redirect_query, svc_auth
from tests.unit.identity.oauth_world import SPA_REDIRECT, SVC_SECRET, VERIFIER


def _assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert response.headers["cache-control"] == "no-store"
    assert "access_token" not in response.text


async def test_client_credentials_with_basic(oauth: OAuthHttp) -> None:
    answer = await oauth.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "ledger.read"},
        auth=svc_auth(),
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 900, "ledger.read")
    assert oauth.world.verifier.verify(body["access_token"]).principal.subject == "svc"


async def test_client_credentials_with_client_secret_post(oauth: OAuthHttp) -> None:
    answer = await oauth.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "svc", "client_secret": SVC_SECRET},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "ledger.read transfers.write"


async def test_basic_credentials_are_form_urlencoded_before_base64(oauth: OAuthHttp) -> None:
    # RFC 6749 §2.3.1: "svc" and the secret, each form-urlencoded ("-" stays as is).
    raw = base64.b64encode(f"svc:{SVC_SECRET}".encode()).decode()
    answer = await oauth.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"authorization": f"Basic {raw}"},
    )
    assert answer.status_code == 200, answer.text


async def test_both_authentication_methods_at_once_are_refused(oauth: OAuthHttp) -> None:
    answer = await oauth.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_secret": SVC_SECRET},
        auth=svc_auth(),
    )
    _assert_error(answer, 400, "invalid_request")


@pytest.mark.parametrize("client_id", ["svc", "no-such-client"])
async def test_a_failed_basic_authentication_is_401_with_a_challenge_alike_for_any_id(
    oauth: OAuthHttp, client_id: str
) -> None:
    answer = await oauth.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=httpx.BasicAuth(client_id, "wrong-secret"),
    )
    _assert_error(answer, 401, "invalid_client")
    assert answer.headers["www-authenticate"].startswith("Basic ")
    assert answer.json()["error_description"] == "client authentication failed"


async def test_a_failed_post_authentication_is_401_without_a_challenge(oauth: OAuthHttp) -> None:
    answer = await oauth.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "svc", "client_secret": "nope"},
    )
    _assert_error(answer, 401, "invalid_client")
    assert "www-authenticate" not in answer.headers


async def test_no_client_at_all_is_invalid_client(oauth: OAuthHttp) -> None:
    answer = await oauth.http.post("/oauth2/token", data={"grant_type": "client_credentials"})
    _assert_error(answer, 401, "invalid_client")


async def test_a_public_client_gets_no_client_credentials_token(oauth: OAuthHttp) -> None:
    answer = await oauth.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "client_id": "spa"}
    )
    _assert_error(answer, 401, "invalid_client")


async def test_a_scope_beyond_the_grant_is_invalid_scope(oauth: OAuthHttp) -> None:
    answer = await oauth.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "ledgers.admin"},
        auth=svc_auth(),
    )
    _assert_error(answer, 400, "invalid_scope")


async def test_an_unknown_grant_type_is_unsupported(oauth: OAuthHttp) -> None:
    for grant_type in ("password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer"):
        answer = await oauth.http.post(
            "/oauth2/token", data={"grant_type": grant_type}, auth=svc_auth()
        )
        _assert_error(answer, 400, "unsupported_grant_type")


async def test_a_missing_grant_type_is_invalid_request(oauth: OAuthHttp) -> None:
    answer = await oauth.http.post("/oauth2/token", data={}, auth=svc_auth())
    _assert_error(answer, 400, "invalid_request")


class TestAuthorizationCodeGrant:
    async def test_a_code_is_exchanged_for_a_pair(self, oauth: OAuthHttp) -> None:
        answer = await oauth.exchange(await oauth.code())
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
        assert oauth.world.verifier.verify(body["access_token"]).principal.subject == "u-alice"

    async def test_a_public_client_exchanges_with_its_id_only(self, oauth: OAuthHttp) -> None:
        answer = await oauth.sign_in(client_id="spa", redirect_uri=SPA_REDIRECT)
        code = redirect_query(answer)["code"]
        exchanged = await oauth.http.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "client_id": "spa",
                "code": code,
                "redirect_uri": SPA_REDIRECT,
                "code_verifier": VERIFIER,
            },
        )
        assert exchanged.status_code == 200, exchanged.text

    @pytest.mark.parametrize("missing", ["code", "redirect_uri", "code_verifier"])
    async def test_each_parameter_is_required(self, oauth: OAuthHttp, missing: str) -> None:
        answer = await oauth.exchange(await oauth.code(), **{missing: ""})
        _assert_error(answer, 400, "invalid_request")

    async def test_a_wrong_verifier_is_invalid_grant(self, oauth: OAuthHttp) -> None:
        answer = await oauth.exchange(await oauth.code(), code_verifier="w" * 43)
        _assert_error(answer, 400, "invalid_grant")

    async def test_a_reused_code_is_refused_and_its_tokens_revoked(self, oauth: OAuthHttp) -> None:
        code = await oauth.code()
        first = (await oauth.exchange(code)).json()

        _assert_error(await oauth.exchange(code), 400, "invalid_grant")

        family_id = oauth.world.verifier.verify(first["access_token"]).family_id
        assert family_id is not None
        assert await oauth.world.family_revoked(family_id)
        refreshed = await oauth.http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            auth=svc_auth(),
        )
        _assert_error(refreshed, 400, "invalid_grant")


class TestRefreshGrant:
    async def test_a_refresh_rotates_the_token(self, oauth: OAuthHttp) -> None:
        pair = (await oauth.exchange(await oauth.code())).json()
        answer = await oauth.http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]},
            auth=svc_auth(),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["refresh_token"] != pair["refresh_token"]

    async def test_a_reused_refresh_token_is_invalid_grant(self, oauth: OAuthHttp) -> None:
        pair = (await oauth.exchange(await oauth.code())).json()
        form = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
        assert (await oauth.http.post("/oauth2/token", data=form, auth=svc_auth())).is_success
        again = await oauth.http.post("/oauth2/token", data=form, auth=svc_auth())
        _assert_error(again, 400, "invalid_grant")

    async def test_a_public_client_refreshes_with_its_id_in_the_form(
        self, oauth: OAuthHttp
    ) -> None:
        pair = await oauth.public_pair()
        form = {"grant_type": "refresh_token", "client_id": "spa"}

        answer = await oauth.http.post(
            "/oauth2/token", data={**form, "refresh_token": pair["refresh_token"]}
        )

        assert answer.status_code == 200, answer.text
        rotated = answer.json()
        assert rotated["refresh_token"] != pair["refresh_token"]
        verified = oauth.world.verifier.verify(rotated["access_token"])
        assert verified.family_id == oauth.world.verifier.verify(pair["access_token"]).family_id
        # The spent token presented again: the family ends, the newest token with it.
        reused = await oauth.http.post(
            "/oauth2/token", data={**form, "refresh_token": pair["refresh_token"]}
        )
        _assert_error(reused, 400, "invalid_grant")
        assert verified.family_id is not None
        assert await oauth.world.family_revoked(verified.family_id)
        newest = await oauth.http.post(
            "/oauth2/token", data={**form, "refresh_token": rotated["refresh_token"]}
        )
        _assert_error(newest, 400, "invalid_grant")

    async def test_a_public_client_cannot_use_a_confidential_clients_token(
        self, oauth: OAuthHttp
    ) -> None:
        pair = (await oauth.exchange(await oauth.code())).json()
        form = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}

        answer = await oauth.http.post("/oauth2/token", data={**form, "client_id": "spa"})

        _assert_error(answer, 400, "invalid_grant")
        assert (await oauth.http.post("/oauth2/token", data=form, auth=svc_auth())).is_success

    async def test_a_confidential_client_without_its_secret_is_invalid_client(
        self, oauth: OAuthHttp
    ) -> None:
        pair = (await oauth.exchange(await oauth.code())).json()
        form = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}

        answer = await oauth.http.post("/oauth2/token", data={**form, "client_id": "svc"})

        _assert_error(answer, 401, "invalid_client")
        assert (await oauth.http.post("/oauth2/token", data=form, auth=svc_auth())).is_success

    async def test_a_missing_refresh_token_is_invalid_request(self, oauth: OAuthHttp) -> None:
        answer = await oauth.http.post(
            "/oauth2/token", data={"grant_type": "refresh_token"}, auth=svc_auth()
        )
        _assert_error(answer, 400, "invalid_request")


async def test_a_tampered_access_token_from_the_endpoint_is_rejected(oauth: OAuthHttp) -> None:
    # The endpoint's tokens are the platform's JWTs: the verifier refuses a changed one.
    token = (
        await oauth.http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=svc_auth()
        )
    ).json()["access_token"]
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(AccessTokenRejectedError):
        oauth.world.verifier.verify(tampered)
