"""The API over REST: HTTP/1.1 with keep-alive, one connection per client.

httpx makes every call by default; the load's own calls (posting, the trivial ping) take the
lean connection of :mod:`ledgerd.loadgen.http1` unless ``--rest-client httpx`` says otherwise.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from ledgerd.loadgen.config import Target
from ledgerd.loadgen.credentials import BearerHeader
from ledgerd.loadgen.http1 import Http1Connection, Http1Error
from ledgerd.loadgen.transport import (
    AccountView,
    ApiError,
    EntryView,
    Page,
    PostOutcome,
    TransferOrder,
)

PAGE_SIZE = 1000
_OK = 200
_JSON = {"content-type": "application/json"}

JsonObject = dict[str, Any]


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Shared: httpx would build one per client, loading the CA bundle each time (tens of ms
    # apiece), and the targets are plain http:// anyway.
    return ssl.create_default_context()


def _error_code(status: int, content: bytes) -> str:
    """The ledgerd code from the problem body, else the HTTP status."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return str(body["code"])
    return f"HTTP_{status}"


class _BearerAuth(httpx.Auth):
    """The process's current token on each httpx request (it is renewed in place)."""

    def __init__(self, authorization: BearerHeader) -> None:
        self._authorization = authorization

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        if self._authorization.value is not None:
            request.headers["authorization"] = self._authorization.value
        yield request


class _ClientError(Exception):
    """The request got no HTTP answer; ``code`` says why (CLIENT_<what failed>)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _transfer_json(order: TransferOrder) -> JsonObject:
    move = order.movement
    leg = {"debit_account": move.debit, "credit_account": move.credit, "amount": move.amount}
    return {"idempotency_key": order.key, "legs": [leg]}


class RestTransport:
    """httpx for everything; with ``lean``, the timed calls (post, ping) on :mod:`http1`."""

    def __init__(
        self,
        target: Target,
        timeout_s: float,
        *,
        connections: int = 1,
        lean: bool = False,
        authorization: BearerHeader | None = None,
    ) -> None:
        base_url = target.base_url
        authorization = authorization or BearerHeader()
        self._lean = (
            Http1Connection(target.host, target.port, timeout_s, authorization) if lean else None
        )
        self._client = httpx.AsyncClient(
            base_url=base_url,
            auth=_BearerAuth(authorization),
            timeout=timeout_s,
            verify=_tls_context(),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def connect(self) -> None:
        if self._lean is not None:
            try:
                await self._lean.connect()
            except OSError as failure:
                raise ApiError(f"CLIENT_{type(failure).__name__}", str(failure)) from failure
        code = await self.ping()
        if code is not None:
            base = str(self._client.base_url).rstrip("/")
            raise ApiError(code, f"GET {base}/healthz failed")

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()
        await self._client.aclose()

    async def _exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        if self._lean is not None:
            try:
                return await self._lean.request(method, path, body)
            except Http1Error as error:
                raise _ClientError(f"CLIENT_{error.kind}") from error
        try:
            response = await self._client.request(
                method, path, content=body, headers=None if body is None else _JSON
            )
        except httpx.HTTPError as error:
            raise _ClientError(f"CLIENT_{type(error).__name__}") from error
        return response.status_code, response.content

    async def post(self, ledger: str, orders: Sequence[TransferOrder]) -> PostOutcome:
        outcome = PostOutcome()
        path = f"{_ledger_path(ledger)}/transfers"
        if len(orders) == 1:
            body: JsonObject = _transfer_json(orders[0])
        else:
            path += ":batch"
            body = {"transfers": [_transfer_json(order) for order in orders], "atomic": False}
        try:
            status, content = await self._exchange("POST", path, json.dumps(body).encode())
        except _ClientError as error:
            outcome.errors.extend([error.code] * len(orders))
            return outcome
        if status != _OK:
            outcome.errors.extend([_error_code(status, content)] * len(orders))
            return outcome
        try:
            document = json.loads(content)
            if len(orders) == 1:
                outcome.ids.append(str(document["id"]))
                return outcome
            results = list(document["results"])
        except (ValueError, KeyError, TypeError):  # not the API's answer: count, don't crash
            outcome.errors.extend(["BAD_RESPONSE"] * len(orders))
            return outcome
        for result in results:
            if "transfer" in result:
                outcome.ids.append(result["transfer"]["id"])
                outcome.replayed += bool(result.get("replayed"))
            else:
                outcome.errors.append(result.get("error", {}).get("code") or "UNKNOWN")
        if len(results) != len(orders):  # a broken server; count the gap as failures
            outcome.errors.extend(["MISSING_RESULT"] * (len(orders) - len(results)))
        return outcome

    async def ping(self) -> str | None:
        try:
            status, _ = await self._exchange("GET", "/healthz", None)
        except _ClientError as error:
            return error.code
        return None if status == _OK else f"HTTP_{status}"

    async def create_ledger(self, ledger: str) -> None:
        await self._send("POST", "/v1/ledgers", body={"id": ledger, "name": ledger})

    async def create_account(self, ledger: str, account: str, asset: str) -> None:
        await self._send(
            "POST", f"{_ledger_path(ledger)}/accounts", body={"id": account, "asset": asset}
        )

    async def list_accounts(self, ledger: str, token: str) -> Page[AccountView]:
        page = await self._send("GET", f"{_ledger_path(ledger)}/accounts", params=_paging(token))
        return Page([_account_view(item) for item in page["accounts"]], page["next_page_token"])

    async def list_transfer_ids(self, ledger: str, token: str, since: datetime | None) -> Page[str]:
        params = _paging(token)
        if since is not None:
            params["start_time"] = since.astimezone(UTC).isoformat().replace("+00:00", "Z")
        page = await self._send("GET", f"{_ledger_path(ledger)}/transfers", params=params)
        return Page([item["id"] for item in page["transfers"]], page["next_page_token"])

    async def list_entries(self, ledger: str, account: str, token: str) -> Page[EntryView]:
        path = f"{_ledger_path(ledger)}/accounts/{account}/entries"
        page = await self._send("GET", path, params=_paging(token))
        return Page(
            [
                EntryView(side=item["side"], layer=item["layer"], amount=int(item["amount"]))
                for item in page["entries"]
            ],
            page["next_page_token"],
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: JsonObject | None = None,
        params: dict[str, str] | None = None,
    ) -> JsonObject:
        try:
            response = await self._client.request(method, path, json=body, params=params)
        except httpx.HTTPError as error:
            raise ApiError(f"CLIENT_{type(error).__name__}", str(error)) from error
        if response.status_code != _OK:
            raise ApiError(_error_code(response.status_code, response.content), response.text[:500])
        document = response.json()
        if not isinstance(document, dict):
            raise ApiError("BAD_RESPONSE", f"{method} {path}: not a JSON object")
        return document


def _ledger_path(ledger: str) -> str:
    # Ids match ^[A-Za-z0-9_:.-]{1,128}$ (checked when the run is configured): path-safe.
    return f"/v1/ledgers/{ledger}"


def _paging(token: str) -> dict[str, str]:
    params = {"page_size": str(PAGE_SIZE)}
    if token:
        params["page_token"] = token
    return params


def _account_view(item: JsonObject) -> AccountView:
    balance = item["balance"]
    return AccountView(
        id=item["id"],
        asset=item["asset"],
        posted_debits=int(balance["posted_debits"]),
        posted_credits=int(balance["posted_credits"]),
        pending_debits=int(balance["pending_debits"]),
        pending_credits=int(balance["pending_credits"]),
    )
