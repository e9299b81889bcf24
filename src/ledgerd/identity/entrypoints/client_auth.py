"""How a client identifies itself at the token and revoke endpoints (RFC 6749 §2.3.1).

Either HTTP Basic (``client_secret_basic``: id and secret, each form-urlencoded, joined by a
colon, base64) or ``client_id`` and ``client_secret`` in the body (``client_secret_post``), never
both (RFC 6749 §2.3: one method per request); or, for a public client, ``client_id`` alone.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from urllib.parse import unquote_plus

from ledgerd.identity.application.authenticate_any_client import ClientIdentification
from ledgerd.identity.entrypoints.oauth_errors import OAuthError, invalid_client, invalid_request

_BASIC = "basic "


@dataclass(frozen=True, slots=True)
class PresentedClient:
    identification: ClientIdentification
    _: KW_ONLY
    basic_used: bool


def presented_client(authorization: str | None, form: Mapping[str, str]) -> PresentedClient:
    if authorization is None:
        client_id = form.get("client_id")
        if client_id is None:
            raise invalid_client(basic_used=False)
        return PresentedClient(
            ClientIdentification(client_id, form.get("client_secret")), basic_used=False
        )
    if "client_secret" in form:
        raise invalid_request("use one client authentication method: HTTP Basic or the body")
    client_id, secret = _basic_credentials(authorization)
    # client_id may be repeated in the body (RFC 6749 §4.1.3), but only as the same id.
    if form.get("client_id", client_id) != client_id:
        raise invalid_request("client_id differs from the authenticated client")
    return PresentedClient(ClientIdentification(client_id, secret), basic_used=True)


def _basic_credentials(authorization: str) -> tuple[str, str]:
    if not authorization[: len(_BASIC)].lower() == _BASIC:
        raise _bad_basic()
    try:
        decoded = base64.b64decode(authorization[len(_BASIC) :].strip(), validate=True)
        text = decoded.decode("ascii")
    except (binascii.Error, ValueError):
        raise _bad_basic() from None
    encoded_id, colon, encoded_secret = text.partition(":")
    try:
        client_id = unquote_plus(encoded_id, encoding="ascii", errors="strict")
        secret = unquote_plus(encoded_secret, encoding="ascii", errors="strict")
    except UnicodeDecodeError:
        raise _bad_basic() from None
    if not colon or not client_id or not secret:
        raise _bad_basic()
    return client_id, secret


def _bad_basic() -> OAuthError:
    return invalid_client(basic_used=True)
