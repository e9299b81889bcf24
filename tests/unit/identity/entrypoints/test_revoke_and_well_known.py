"""POST /oauth2/revoke (RFC 7009) and the two well-known documents (RFC 8414, JWKS)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from tests.unit.identity.entrypoints.conftest import OAuthHttp, svc_auth
from tests.unit.identity.oauth_world import ISSUER


async def test_revoking_a_refresh_token_ends_its_family(oauth: OAuthHttp) -> None:
    pair = (await oauth.exchange(await oauth.code())).json()
    answer = await oauth.http.post(
        "/oauth2/revoke",
        data={"token": pair["refresh_token"], "token_type_hint": "refresh_token"},
        auth=svc_auth(),
    )
    assert answer.status_code == 200
    assert answer.content == b""
    family_id = oauth.world.verifier.verify(pair["access_token"]).family_id
    assert family_id is not None
    assert await oauth.world.family_revoked(family_id)


async def test_a_public_client_revokes_its_own_refresh_token_by_its_id(oauth: OAuthHttp) -> None:
    pair = await oauth.public_pair()
    family_id = oauth.world.verifier.verify(pair["access_token"]).family_id
    assert family_id is not None

    answer = await oauth.http.post(
        "/oauth2/revoke", data={"token": pair["refresh_token"], "client_id": "spa"}
    )

    assert answer.status_code == 200, answer.text
    assert await oauth.world.family_revoked(family_id)


async def test_a_public_client_cannot_revoke_another_clients_token(oauth: OAuthHttp) -> None:
    pair = (await oauth.exchange(await oauth.code())).json()
    family_id = oauth.world.verifier.verify(pair["access_token"]).family_id
    assert family_id is not None

    answer = await oauth.http.post(
        "/oauth2/revoke", data={"token": pair["refresh_token"], "client_id": "spa"}
    )

    # Answered like any token it does not own (RFC 7009 §2.2), and the family is left alone.
    assert answer.status_code == 200
    assert not await oauth.world.family_revoked(family_id)


async def test_unknown_tokens_and_access_tokens_are_answered_200(oauth: OAuthHttp) -> None:
    pair = (await oauth.exchange(await oauth.code())).json()
    for token in ("no-such-token", pair["access_token"]):
        answer = await oauth.http.post("/oauth2/revoke", data={"token": token}, auth=svc_auth())
        assert answer.status_code == 200


async def test_revocation_needs_the_client_and_a_token(oauth: OAuthHttp) -> None:
    wrong = await oauth.http.post(
        "/oauth2/revoke", data={"token": "t"}, auth=httpx.BasicAuth("svc", "wrong")
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    missing = await oauth.http.post("/oauth2/revoke", data={}, auth=svc_auth())
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")


async def test_the_metadata_document_names_the_endpoints_and_s256_only(oauth: OAuthHttp) -> None:
    answer = await oauth.http.get("/.well-known/oauth-authorization-server")
    document = answer.json()
    assert document["issuer"] == ISSUER
    assert document["token_endpoint"] == ISSUER + "/oauth2/token"
    assert document["authorization_endpoint"] == ISSUER + "/oauth2/authorize"
    assert document["revocation_endpoint"] == ISSUER + "/oauth2/revoke"
    assert document["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["response_types_supported"] == ["code"]
    assert "ledger.read" in document["scopes_supported"]
    # "none": a public client names itself at both endpoints, for codes, refreshes, revocation.
    methods = ["client_secret_basic", "client_secret_post", "none"]
    assert document["token_endpoint_auth_methods_supported"] == methods
    assert document["revocation_endpoint_auth_methods_supported"] == methods


async def test_the_jwks_lists_the_public_keys_through_a_rotation(oauth: OAuthHttp) -> None:
    first = (await oauth.http.get("/.well-known/jwks.json")).json()
    assert [key["kid"] for key in first["keys"]] == [oauth.world.keys.key_set.current.kid]
    assert all("d" not in key for key in first["keys"])

    now = oauth.world.clock.now()
    oauth.world.keys.replace(oauth.world.keys.key_set.rotate(now, timedelta(minutes=15)))
    second = (await oauth.http.get("/.well-known/jwks.json")).json()
    assert len(second["keys"]) == 2
    assert second["keys"][1]["kid"] == first["keys"][0]["kid"]


async def test_a_wrong_method_is_405_with_allow(oauth: OAuthHttp) -> None:
    answer = await oauth.http.get("/oauth2/token")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json()["error"] == "invalid_request"
