"""Bad input at the token endpoint: an RFC-shaped 400, never a 500, never a token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.unit.identity.entrypoints.conftest import OAuthHttp, svc_auth
from tests.unit.identity.oauth_world import SVC_SECRET

FORM = {"content-type": "application/x-www-form-urlencoded"}


def _assert_refused(answer: httpx.Response) -> None:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_request"
    assert set(body) == {"error", "error_description"}
    assert "access_token" not in answer.text


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=client_credentials&grant_type=client_credentials",
        b"grant_type=client_credentials&scope=ledger.read&scope=ledger.read",
        b"grant_type=client_credentials&&",
        b"grant_type",
        b"grant_type=client_credentials&scope=%ZZ",
        b"grant_type=client_credentials&scope=ledger.r%C3%A9ad",
        "grant_type=client_credentials&scope=lédger".encode(),
        b"grant_type=client_credentials&scope=a%00b",
        b"grant_type=client_credentials&scope=a%0Ab",
        b"grant_type=client_credentials&" + b"&".join(b"p%d=1" % n for n in range(40)),
    ],
)
async def test_a_malformed_or_repeated_form_is_invalid_request(
    oauth: OAuthHttp, body: bytes
) -> None:
    answer = await oauth.http.post("/oauth2/token", content=body, headers=FORM, auth=svc_auth())
    _assert_refused(answer)


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "text/plain", "multipart/form-data; boundary=x"]
)
async def test_only_a_form_body_is_read(oauth: OAuthHttp, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    answer = await oauth.http.post(
        "/oauth2/token",
        content=b'{"grant_type": "client_credentials"}',
        headers=headers,
        auth=svc_auth(),
    )
    _assert_refused(answer)


async def test_a_charset_parameter_on_the_media_type_is_fine(oauth: OAuthHttp) -> None:
    answer = await oauth.http.post(
        "/oauth2/token",
        content=b"grant_type=client_credentials",
        headers={"content-type": "application/x-www-form-urlencoded; charset=UTF-8"},
        auth=svc_auth(),
    )
    assert answer.status_code == 200


async def test_an_oversized_body_is_refused(oauth: OAuthHttp) -> None:
    body = b"grant_type=client_credentials&scope=" + b"a" * 20_000
    answer = await oauth.http.post("/oauth2/token", content=body, headers=FORM, auth=svc_auth())
    _assert_refused(answer)


async def test_an_oversized_chunked_body_is_refused(oauth: OAuthHttp) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"grant_type=client_credentials&scope="
        for _ in range(20):
            yield b"a" * 1024

    answer = await oauth.http.post("/oauth2/token", content=chunks(), headers=FORM, auth=svc_auth())
    _assert_refused(answer)


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic",
        "Basic !!!notbase64",
        "Basic " + "c3Zj",  # "svc", no colon
        "Basic " + "OnNlY3JldA==",  # ":secret", no id
        "Bearer abc",
        "Basic " + "A" * 70_000,
    ],
)
async def test_a_malformed_basic_header_is_invalid_client(
    oauth: OAuthHttp, authorization: str
) -> None:
    answer = await oauth.http.post(
        "/oauth2/token",
        content=b"grant_type=client_credentials",
        headers={**FORM, "authorization": authorization},
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


async def test_a_non_ascii_authorization_header_is_invalid_request(oauth: OAuthHttp) -> None:
    answer = await oauth.http.post(
        "/oauth2/token",
        content=b"grant_type=client_credentials",
        headers=[
            (b"content-type", FORM["content-type"].encode()),
            (b"authorization", "Basic é".encode()),
        ],
    )
    _assert_refused(answer)


async def test_a_client_id_in_the_body_must_match_basic(oauth: OAuthHttp) -> None:
    answer = await oauth.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "someone-else"},
        auth=svc_auth(),
    )
    _assert_refused(answer)


async def test_blank_parameters_count_as_absent(oauth: OAuthHttp) -> None:
    answer = await oauth.http.post(
        "/oauth2/token",
        content=f"grant_type=client_credentials&scope=&client_id=svc&client_secret={SVC_SECRET}".encode(),
        headers=FORM,
    )
    assert answer.status_code == 200
    assert answer.json()["scope"] == "ledger.read transfers.write"
