"""The load generator's access token: given ready, or got by the client-credentials grant.

``ledgerd bench`` is an API client like any other: with ``LEDGERD_AUTH=required`` every call
carries ``authorization: Bearer <token>``. Given ``--token``, that token is used as is (the run
fails with UNAUTHENTICATED once it expires). Given a client id and secret, each process (the
parent for set-up and checks, each client process for its load) asks the server's token
endpoint for a token at start (RFC 6749 §4.4, ``client_secret_basic``) and for the next one
before it expires: a run may outlast a token's lifetime (15 min by default).

The token and the secret are never printed: :meth:`BenchAuth.describe` names the method and
the client id only, and this module's errors quote the endpoint's error code, not its body.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from ledgerd.loadgen.config import HTTP, BenchConfigError, Target
from ledgerd.loadgen.transport import ApiError

TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105 - a path, not a password
# Renew when a fifth of the token's life is left (at least 10 s before it ends): a token is
# never used in its last seconds, where clock skew or a slow call would see it expire.
RENEW_AT_REMAINING_FRACTION: Final = 0.2
MIN_RENEW_MARGIN_S: Final = 10.0
RETRY_AFTER_FAILURE_S: Final = 2.0
TOKEN_REQUEST_TIMEOUT_S: Final = 30.0
_OK: Final = 200


@dataclass(frozen=True, slots=True)
class BenchAuth:
    """How the run authenticates: a ready ``token``, or ``client_id``/``client_secret``."""

    token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    token_url: str | None = None

    def __post_init__(self) -> None:
        if self.token is not None and self.client_id is not None:
            msg = "give either a token or client credentials, not both"
            raise ValueError(msg)
        if self.token is None and (
            self.client_id is None or self.client_secret is None or self.token_url is None
        ):
            msg = "client credentials need a client id, a client secret and a token URL"
            raise ValueError(msg)

    def describe(self) -> dict[str, Any]:
        """For the result document: how, and as whom — never the token or the secret."""
        if self.token is not None:
            return {"method": "token"}
        return {
            "method": "client_credentials",
            "client_id": self.client_id,
            "token_url": self.token_url,
        }


@dataclass(slots=True)
class BearerHeader:
    """The ``authorization`` value every call of one process sends; renewed in place."""

    value: str | None = None

    @property
    def grpc_metadata(self) -> tuple[tuple[str, str], ...] | None:
        return None if self.value is None else (("authorization", self.value),)


@dataclass(frozen=True, slots=True)
class _Grant:
    token: str
    lifetime_s: float


class TokenKeeper:
    """Keeps ``header`` holding a valid token: got at :meth:`start`, renewed in the background."""

    def __init__(
        self,
        auth: BenchAuth | None,
        timeout_s: float = TOKEN_REQUEST_TIMEOUT_S,
        *,
        network: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._auth = auth
        self._timeout_s = timeout_s
        self._network = network  # None: the real network (tests give a fake token endpoint)
        self.header = BearerHeader()
        self._renewer: asyncio.Task[None] | None = None
        self.renewals = 0

    async def start(self) -> None:
        auth = self._auth
        if auth is None:
            return
        if auth.token is not None:
            self.header.value = f"Bearer {auth.token}"
            return
        grant = await self._request()
        self.header.value = f"Bearer {grant.token}"
        self._renewer = asyncio.create_task(self._renew_forever(grant.lifetime_s))

    async def stop(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew_forever(self, lifetime_s: float) -> None:
        while True:
            margin = renewal_margin_s(lifetime_s)
            await asyncio.sleep(lifetime_s - margin)
            grant = await self._renewed(time.monotonic() + margin)
            self.header.value = f"Bearer {grant.token}"
            self.renewals += 1
            lifetime_s = grant.lifetime_s

    async def _renewed(self, expires: float) -> _Grant:
        while True:
            try:
                return await self._request()
            except ApiError:
                # Keep the current token (still valid until ``expires``) and try again; if the
                # endpoint stays down, the calls are refused UNAUTHENTICATED and the report
                # says so.
                if time.monotonic() >= expires:
                    self.header.value = None
                await asyncio.sleep(RETRY_AFTER_FAILURE_S)

    async def _request(self) -> _Grant:
        auth = self._auth
        if auth is None or auth.token_url is None or auth.client_id is None:
            msg = "no client credentials to request a token with"
            raise ApiError("TOKEN_NO_CREDENTIALS", msg)
        secret = auth.client_secret or ""
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout_s, transport=self._network
            ) as client:
                response = await client.post(
                    auth.token_url,
                    data={"grant_type": "client_credentials"},
                    auth=httpx.BasicAuth(auth.client_id, secret),
                )
        except httpx.HTTPError as error:
            raise ApiError(
                f"CLIENT_{type(error).__name__}", f"token request to {auth.token_url} failed"
            ) from None
        return _grant(response, auth.token_url)


def renewal_margin_s(lifetime_s: float) -> float:
    """How long before a token's end to get the next one.

    A fifth of its life, 10 s at least, but never more than half of it: a very short lifetime
    must not make renewal a busy loop.
    """
    margin = max(lifetime_s * RENEW_AT_REMAINING_FRACTION, MIN_RENEW_MARGIN_S)
    return min(margin, lifetime_s / 2)


def _grant(response: httpx.Response, token_url: str) -> _Grant:
    try:
        document = response.json()
    except ValueError:
        document = None
    if response.status_code != _OK or not isinstance(document, dict):
        # RFC 6749 §5.2's error code only: the body could echo what was sent.
        code = document.get("error") if isinstance(document, dict) else None
        raise ApiError(
            f"TOKEN_{code or response.status_code}",
            f"the token endpoint {token_url} refused the client credentials "
            f"(HTTP {response.status_code}); check --client-id and --client-secret",
        )
    token, expires_in = document.get("access_token"), document.get("expires_in")
    if not isinstance(token, str) or not token or not isinstance(expires_in, int):
        raise ApiError("TOKEN_BAD_RESPONSE", f"{token_url} answered without a usable token")
    return _Grant(token, float(expires_in))


def bench_auth(
    target: Target,
    token: str | None,
    client_id: str | None,
    client_secret: str | None,
    token_url: str | None,
) -> BenchAuth | None:
    """The command line's choice, checked; None when it gives neither a token nor a client."""
    if token is None and client_id is None and client_secret is None:
        return None
    if token is not None and (client_id is not None or client_secret is not None):
        raise BenchConfigError("give --token, or --client-id and --client-secret, not both")
    if token is not None:
        return BenchAuth(token=token)
    if client_id is None or client_secret is None:
        raise BenchConfigError("client credentials need both --client-id and --client-secret")
    if token_url is None:
        # Over REST the token endpoint is on the same server; a gRPC port says nothing of
        # where the server's HTTP side listens.
        if target.scheme != HTTP:
            raise BenchConfigError(
                "with a grpc:// target, give --token-url (the server's http://HOST:PORT"
                f"{TOKEN_PATH})"
            )
        token_url = f"{target.base_url}{TOKEN_PATH}"
    elif urlsplit(token_url).scheme not in {"http", "https"}:
        raise BenchConfigError(f"token URL {token_url!r}: expected http:// or https://")
    return BenchAuth(client_id=client_id, client_secret=client_secret, token_url=token_url)
