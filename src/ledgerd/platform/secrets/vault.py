"""OpenBao / HashiCorp Vault KV v2, read over its HTTP API with httpx.

Not hvac: it is synchronous (each read would need a thread), and a KV v2 read is one GET with
a token header, which httpx (a dependency already, and async) does directly.
"""

from __future__ import annotations

from typing import Any

import httpx

from ledgerd.platform.secrets.ports import SecretNotFoundError, SecretUnreachableError
from ledgerd.platform.secrets.references import SecretReference
from ledgerd.platform.secrets.secret import Secret

_NOT_FOUND = 404
_FORBIDDEN = 403
_SERVER_FAULT = 500


class VaultKvStore:
    """``secret://vault/MOUNT/PATH#FIELD``: ``GET {address}/v1/MOUNT/data/PATH``."""

    def __init__(self, address: str, token: Secret, *, timeout_s: float = 5.0) -> None:
        self._token = token
        self._client = httpx.AsyncClient(base_url=address.rstrip("/"), timeout=timeout_s)

    async def read(self, reference: SecretReference) -> Secret:
        url = f"/v1/{reference.mount}/data/{reference.secret_path}"
        params = {"version": version} if (version := reference.option("version")) else {}
        try:
            answer = await self._client.get(
                url, params=params, headers={"X-Vault-Token": self._token.reveal()}
            )
        except httpx.HTTPError as error:
            raise SecretUnreachableError(reference, _why(error)) from None
        if answer.status_code in {_NOT_FOUND, _FORBIDDEN}:
            reason = "no such secret" if answer.status_code == _NOT_FOUND else "permission denied"
            raise SecretNotFoundError(reference, f"{reason} (HTTP {answer.status_code})")
        if answer.status_code >= _SERVER_FAULT:
            # Sealed, standby without a leader, overloaded: it may answer later.
            raise SecretUnreachableError(reference, f"the store answered HTTP {answer.status_code}")
        if not answer.is_success:
            raise SecretNotFoundError(reference, f"the store answered HTTP {answer.status_code}")
        return Secret(_field(reference, answer.json()))

    async def aclose(self) -> None:
        await self._client.aclose()


def _field(reference: SecretReference, body: Any) -> str:  # noqa: ANN401 - JSON from the store
    data = body.get("data", {}).get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        # A deleted or destroyed version answers with data: null.
        raise SecretNotFoundError(reference, "the secret has no data (deleted?)")
    value = data.get(reference.field)
    if value is None:
        raise SecretNotFoundError(reference, "the secret has no such field")
    if not isinstance(value, str):
        raise SecretNotFoundError(reference, "the field is not a string")
    return value


def _why(error: httpx.HTTPError) -> str:
    # The exception's text may quote a URL, never the token (a header); keep to its kind.
    return f"the store did not answer ({type(error).__name__})"
