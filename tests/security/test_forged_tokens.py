"""Forged, altered and misdirected access tokens, over real HTTP and gRPC, change nothing.

One ``ledgerd serve`` (``LEDGERD_AUTH=required``, SQLite) for the module. Each attack tries to
move money (a ``PostTransfer`` from bank to alice) over both transports, must get exactly the
documented refusal, and the ledger read with an admin token before and after must be the same.

Covered at the unit level instead (a server's clock cannot be moved from here, and a key's
overlap ends only after the 60 s minimum token lifetime plus the 30 s leeway):
an expired token and ``nbf`` in the future
(``tests/unit/platform/auth/test_access_tokens.py::test_an_expired_token_is_refused_once_the_leeway_has_passed``,
``::test_a_token_not_yet_valid_beyond_the_leeway_is_refused``); a key removed from the set after
rotation (``::test_a_retired_key_is_refused_after_the_overlap_even_for_a_long_lived_token``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jwt
from joserfc.jwk import OKPKey

from tests.e2e.grpc.test_serve import ledgerd_serve
from tests.security.deployment import (
    LEDGER,
    OTHER_LEDGER,
    REST_LINE,
    SETTINGS,
    Client,
    Deployment,
    Refusal,
    deployment,
    leaked,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

INVALID_TOKEN = 'Bearer realm="ledgerd", error="invalid_token"'


class Attacked:
    """The served app, an admin's token to read the ledger with, and a genuine token to alter."""

    def __init__(self, served: Deployment, admin: str, payments: Client, genuine: str) -> None:
        self.served = served
        self.admin = admin
        self.payments = payments
        self.genuine = genuine


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def attacked(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Attacked]:
    database = tmp_path_factory.mktemp("forged") / "ledgerd.db"
    async with deployment(f"sqlite+aiosqlite:///{database}") as served:
        admin = await served.token(await served.client("admin", "--all-ledgers"))
        await served.books(admin)
        # A payments service's real token for the ledger: what an attacker starts from.
        payments = await served.client("payments", "--ledgers", LEDGER)
        yield Attacked(served, admin, payments, await served.token(payments))


def _segment(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def _json_segment(value: dict[str, Any]) -> str:
    return _segment(json.dumps(value, separators=(",", ":")).encode())


def _decoded(segment: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def _kid(token: str) -> str:
    kid: str = _decoded(token.split(".", maxsplit=1)[0])["kid"]
    return kid


async def _refused_alike_on_both(
    attacked: Attacked, token: str, reason: str
) -> tuple[Refusal, Refusal]:
    """Both transports refuse ``token`` as a bad credential for ``reason``; nothing changes."""
    served = attacked.served
    before = await served.snapshot(attacked.admin)
    rest = await served.post_over_rest(f"Bearer {token}")
    grpc_ = await served.post_over_grpc(f"Bearer {token}")
    assert rest is not None
    assert grpc_ is not None
    message = f"access token refused: {reason}"
    assert (rest.status, rest.code, rest.message, rest.www_authenticate) == (
        401,
        "UNAUTHENTICATED",
        message,
        INVALID_TOKEN,
    )
    assert (grpc_.status, grpc_.code, grpc_.message) == (
        "UNAUTHENTICATED",
        "UNAUTHENTICATED",
        message,
    )
    assert rest.details == grpc_.details == {"error": "invalid_token"}
    assert await served.snapshot(attacked.admin) == before
    return rest, grpc_


async def test_the_genuine_token_moves_money_so_the_refusals_below_are_of_the_forgery(
    attacked: Attacked,
) -> None:
    # The control: without it a refusal below could be the call's fault, not the token's.
    served = attacked.served
    headers = {"authorization": f"Bearer {attacked.genuine}"}
    answer = await served.http.get(f"/v1/ledgers/{LEDGER}/accounts/alice/balance", headers=headers)
    assert answer.status_code == 200, answer.text


async def test_alg_none_is_refused(attacked: Attacked) -> None:
    header, payload, _signature = attacked.genuine.split(".")
    unsigned = {**_decoded(header), "alg": "none"}
    await _refused_alike_on_both(attacked, f"{_json_segment(unsigned)}.{payload}.", "bad_signature")


async def test_hs256_keyed_with_the_published_public_key_is_refused(attacked: Attacked) -> None:
    header, payload, _signature = attacked.genuine.split(".")
    jwks = (await attacked.served.http.get("/.well-known/jwks.json")).json()
    (published,) = [key for key in jwks["keys"] if key["kid"] == _decoded(header)["kid"]]
    public_key = OKPKey.import_key(published).public_key
    assert isinstance(public_key, Ed25519PublicKey)
    # Algorithm confusion: the public key, in the forms a confused verifier might use as the
    # HMAC secret (its PEM, its raw bytes, the JWK as published), each tried. The algorithm is
    # the key's, never the token's: a header naming another is refused like a bad signature.
    for secret in (
        json.dumps(published).encode(),
        public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    ):
        forged_header = _json_segment({**_decoded(header), "alg": "HS256"})
        signing_input = f"{forged_header}.{payload}".encode()
        mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
        await _refused_alike_on_both(
            attacked, f"{forged_header}.{payload}.{_segment(mac)}", "bad_signature"
        )


async def test_a_tampered_payload_is_refused(attacked: Attacked) -> None:
    header, payload, signature = attacked.genuine.split(".")
    # The token widened to every ledger, its signature kept.
    widened = _json_segment({**_decoded(payload), "ledgers": "*"})
    await _refused_alike_on_both(attacked, f"{header}.{widened}.{signature}", "bad_signature")


async def test_a_token_signed_by_a_key_the_server_does_not_hold_is_refused(
    attacked: Attacked,
) -> None:
    # The attacker's own Ed25519 key, named by its own thumbprint: a well-formed, validly
    # signed token whose key is not in the server's set.
    own_key = OKPKey.import_key(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    _header, payload, _signature = attacked.genuine.split(".")
    claims = {**_decoded(payload), "ledgers": "*"}
    header = {"alg": "Ed25519", "kid": own_key.thumbprint(), "typ": "at+jwt"}
    forged = jwt.encode(header, claims, own_key, algorithms=["Ed25519"])
    await _refused_alike_on_both(attacked, forged, "unknown_key")


async def _token_of_another_server(served: Deployment, client: Client, **settings: str) -> str:
    """A token for ``client`` from a second server on the same database, set up otherwise."""
    async with ledgerd_serve(served.database_url, **{**SETTINGS, **settings}) as other:
        rest = REST_LINE.match(await other.read_until(lambda line: bool(REST_LINE.match(line))))
        assert rest is not None
        other.drain()
        async with httpx.AsyncClient(base_url=rest.group(1)) as http:
            answer = await http.post(
                "/oauth2/token", data={"grant_type": "client_credentials"}, auth=client.basic
            )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    served.credentials.append(token)
    # Its output is gone with it: grepped here, not with the module's server's.
    assert client.secret not in other.log
    assert token.rsplit(".", 1)[-1] not in other.log
    return token


async def test_tokens_of_a_server_for_another_audience_or_issuer_are_refused(
    attacked: Attacked,
) -> None:
    # Second servers on the same database sign with the very same keys, one for another
    # audience, one as another issuer: only the claim tells their tokens apart. (Started at
    # once: each start costs seconds.)
    served = attacked.served
    wrong_audience, wrong_issuer = await asyncio.gather(
        _token_of_another_server(served, attacked.payments, token_audience="another-service"),
        _token_of_another_server(
            served, attacked.payments, token_issuer="http://another-issuer.test"
        ),
    )
    for token, reason in ((wrong_audience, "wrong_audience"), (wrong_issuer, "wrong_issuer")):
        assert _kid(token) == _kid(attacked.genuine)
        await _refused_alike_on_both(attacked, token, reason)


async def test_a_token_for_one_ledger_on_another_answers_like_a_missing_ledger(
    attacked: Attacked,
) -> None:
    # The control and the attack on the same RPC: a ledger that does not exist, asked for by
    # an admin, and a real ledger outside the token's grant must be answered alike.
    # (tests/security/test_every_rpc.py checks every RPC this way.)
    served = attacked.served
    before = await served.snapshot(attacked.admin)
    for post in (served.post_over_rest, served.post_over_grpc):
        missing = await post(f"Bearer {attacked.admin}", "no-such-books")
        hidden = await post(f"Bearer {attacked.genuine}", OTHER_LEDGER)
        assert missing is not None
        assert hidden is not None
        assert (missing.code, missing.status) == ("LEDGER_NOT_FOUND", missing.status)
        assert missing.status in {404, "NOT_FOUND"}
        assert (hidden.code, hidden.status, hidden.details) == (
            missing.code,
            missing.status,
            {"ledger": OTHER_LEDGER},
        )
        assert hidden.message == missing.message.replace("no-such-books", OTHER_LEDGER)
    assert await served.snapshot(attacked.admin) == before


async def test_a_token_without_the_scope_is_refused(attacked: Attacked) -> None:
    served = attacked.served
    reader = await served.token(
        await served.client("reader", "--ledgers", LEDGER, scopes=("ledger.read",))
    )
    before = await served.snapshot(attacked.admin)
    rest = await served.post_over_rest(f"Bearer {reader}")
    grpc_ = await served.post_over_grpc(f"Bearer {reader}")
    assert rest is not None
    assert grpc_ is not None
    assert (rest.status, rest.code, rest.details) == (
        403,
        "INSUFFICIENT_SCOPE",
        {"scope": "transfers.write"},
    )
    assert rest.www_authenticate == (
        'Bearer realm="ledgerd", error="insufficient_scope", scope="transfers.write"'
    )
    assert (grpc_.status, grpc_.code, grpc_.details) == (
        "PERMISSION_DENIED",
        "INSUFFICIENT_SCOPE",
        {"scope": "transfers.write"},
    )
    assert await served.snapshot(attacked.admin) == before


async def test_no_secret_or_token_of_this_module_reached_the_server_output(
    attacked: Attacked,
) -> None:
    # Last in the module on purpose: it greps what every attack above made the server print.
    served = attacked.served
    assert len(served.credentials) >= 4
    assert leaked(served) == [], served.served.log
