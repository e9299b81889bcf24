"""Dynamic database credentials: a lease from OpenBao/Vault's database secrets engine.

``secret://vault-db/MOUNT/creds/ROLE`` names them. Reading ``MOUNT/creds/ROLE`` makes a new
database role and gives its username and password under a lease; the lease is renewed
(``sys/leases/renew``) at two thirds of its duration, and replaced by new credentials when it
cannot be: renewal refused (revoked, expired), or granted shorter than asked (the role's
``max_ttl`` is near). A connection the database refuses with the current credentials (the role
was dropped by a forced revocation) asks for new ones at once (``replace_refused``).

Over httpx, as the KV store (``vault.py`` says why not hvac).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from ledgerd.platform.secrets.ports import SecretNotFoundError, SecretUnreachableError
from ledgerd.platform.secrets.references import SecretReference
from ledgerd.platform.secrets.secret import Secret

log = logging.getLogger(__name__)

# Renew (or replace) when this much of the lease has run: a third is left to retry in.
RENEW_AT = 2 / 3
# Refused connections replace the credentials at most this often: if the new ones are refused
# as well (a role whose creation statements are wrong), every connect must not lease a role.
MIN_REPLACEMENT_INTERVAL_S = 5.0
# Waits between attempts while the store does not answer.
_RETRY_S = (1.0, 2.0, 5.0)
_FORBIDDEN = 403
_NOT_FOUND = 404
_SERVER_FAULT = 500


@dataclass(frozen=True, slots=True)
class DatabaseCredentials:
    """A leased database role: its name may be shown (pg_stat_activity does), not its password."""

    username: str
    password: Secret


@dataclass(frozen=True, slots=True)
class _Lease:
    credentials: DatabaseCredentials
    lease_id: str
    duration_s: float
    renewable: bool
    granted_at: float


class DatabaseLease:
    """The credentials current now, and the loop that keeps them leased.

    ``credentials`` answers from memory (the engine's connect hook asks it for every new
    connection). ``run`` renews or replaces the lease in time and, after a replacement, awaits
    ``retire`` (the pool's disposal: idle connections of the old role closed, those in use
    left to finish).
    """

    def __init__(
        self,
        address: str,
        token: Secret,
        reference: SecretReference,
        *,
        timeout_s: float = 5.0,
    ) -> None:
        self._token = token
        self._reference = reference
        self._client = httpx.AsyncClient(base_url=address.rstrip("/"), timeout=timeout_s)
        self._lease: _Lease | None = None
        self._ending = False  # renewal granted less than asked: replace at the next due time
        self._replacing = asyncio.Lock()
        self._wake = asyncio.Event()
        self._retire_pending = False
        self._failing = False
        self._refused_at = -MIN_REPLACEMENT_INTERVAL_S

    @property
    def reference(self) -> SecretReference:
        return self._reference

    @property
    def credentials(self) -> DatabaseCredentials:
        """The credentials new connections use (``obtain`` must have succeeded once)."""
        assert self._lease is not None, "obtain() first"  # noqa: S101 - a programming error
        return self._lease.credentials

    @property
    def lease_id(self) -> str | None:
        return None if self._lease is None else self._lease.lease_id

    async def obtain(self) -> DatabaseCredentials:
        """New credentials, current from now on; ``SecretError`` if the store will not give them."""
        body = await self._call("GET", f"/v1/{self._reference.path}")
        data = body.get("data") if isinstance(body, dict) else None
        username = data.get("username") if isinstance(data, dict) else None
        password = data.get("password") if isinstance(data, dict) else None
        if not isinstance(username, str) or not isinstance(password, str):
            raise SecretNotFoundError(self._reference, "the answer holds no username and password")
        credentials = DatabaseCredentials(username, Secret(password))
        self._lease = _Lease(
            credentials,
            lease_id=str(body.get("lease_id", "")),
            duration_s=float(body.get("lease_duration", 0)),
            renewable=bool(body.get("renewable", False)),
            granted_at=time.monotonic(),
        )
        self._ending = not self._lease.renewable
        log.info(
            "database credentials leased from %s: role %s for %.0f s",
            self._reference,
            username,
            self._lease.duration_s,
        )
        return credentials

    async def replace_refused(self, username: str | None) -> None:
        """The database refused ``username``: lease new credentials now, unless done already.

        Calls made together (several connections refused at once) lease one role between them.
        """
        async with self._replacing:
            lease = self._lease
            if lease is None or lease.credentials.username != username:
                return  # replaced since that connection was tried
            if time.monotonic() - self._refused_at < MIN_REPLACEMENT_INTERVAL_S:
                return
            self._refused_at = time.monotonic()
            log.warning(
                "the database refused the leased role %s (revoked?): leasing new credentials",
                username,
            )
            await self._replace()

    async def run(self, stop: asyncio.Event, retire: Callable[[], Awaitable[None]]) -> None:
        """Renew or replace the lease in time, until ``stop`` is set."""
        attempt = 0
        while not stop.is_set():
            await self._sleep(stop, self._seconds_until_due())
            if stop.is_set():
                return
            if self._wake.is_set():
                self._wake.clear()
            elif self._seconds_until_due() <= 0:
                try:
                    await self._renew_or_replace()
                except (SecretUnreachableError, SecretNotFoundError) as error:
                    self._warn_once(error.reason)
                    await self._sleep(stop, _RETRY_S[min(attempt, len(_RETRY_S) - 1)])
                    attempt += 1
                    continue
                if self._failing:
                    log.info("the store of %s answers again", self._reference)
                    self._failing = False
                attempt = 0
            if self._retire_pending:
                self._retire_pending = False
                await retire()

    async def revoke(self) -> None:
        """Give the lease back (the role is dropped): the process is done with it."""
        if self._lease is None:
            return
        with contextlib.suppress(SecretUnreachableError, SecretNotFoundError):
            await self._call("PUT", "/v1/sys/leases/revoke", {"lease_id": self._lease.lease_id})
            log.info(
                "database credentials' lease revoked: role %s", self._lease.credentials.username
            )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _seconds_until_due(self) -> float:
        if self._lease is None:
            return 0.0
        due = self._lease.granted_at + self._lease.duration_s * RENEW_AT
        return due - time.monotonic()

    async def _renew_or_replace(self) -> None:
        async with self._replacing:
            lease = self._lease
            if lease is None or self._ending:
                await self._replace()
                return
            try:
                body = await self._call(
                    "PUT",
                    "/v1/sys/leases/renew",
                    {"lease_id": lease.lease_id, "increment": int(lease.duration_s)},
                )
            except SecretNotFoundError as error:
                log.warning(
                    "the lease of role %s was not renewed (%s): leasing new credentials",
                    lease.credentials.username,
                    error.reason,
                )
                await self._replace()
                return
            granted = float(body.get("lease_duration", 0)) if isinstance(body, dict) else 0.0
            # Less than asked: the role's max_ttl is near; the next due time replaces it.
            self._ending = granted < lease.duration_s
            self._lease = _Lease(
                lease.credentials, lease.lease_id, granted, lease.renewable, time.monotonic()
            )
            log.info(
                "database credentials' lease renewed: role %s for %.0f s%s",
                lease.credentials.username,
                granted,
                " (its maximum: new credentials before it ends)" if self._ending else "",
            )

    async def _replace(self) -> None:
        previous = self._lease
        await self.obtain()
        if previous is not None:
            self._retire_pending = True
            self._wake.set()
            # The old lease is left to end on its own: calls in flight on its connections finish.

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        if seconds <= 0:
            return
        stopping = asyncio.ensure_future(stop.wait())
        waking = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({stopping, waking}, timeout=seconds, return_when="FIRST_COMPLETED")
        finally:
            for waiting in (stopping, waking):
                waiting.cancel()

    def _warn_once(self, reason: str) -> None:
        if not self._failing:
            log.warning(
                "database credentials from %s could not be renewed or replaced (%s); retrying",
                self._reference,
                reason,
            )
        self._failing = True

    async def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:  # noqa: ANN401 - JSON from the store
        try:
            answer = await self._client.request(
                method, url, json=body, headers={"X-Vault-Token": self._token.reveal()}
            )
        except httpx.HTTPError as error:
            # Its text may quote a URL, never the token (a header); keep to its kind.
            reason = f"the store did not answer ({type(error).__name__})"
            raise SecretUnreachableError(self._reference, reason) from None
        if answer.status_code >= _SERVER_FAULT:
            reason = f"the store answered HTTP {answer.status_code}"
            raise SecretUnreachableError(self._reference, reason)
        if not answer.is_success:
            reason = {_NOT_FOUND: "no such role or lease", _FORBIDDEN: "permission denied"}.get(
                answer.status_code, "refused"
            )
            raise SecretNotFoundError(self._reference, f"{reason} (HTTP {answer.status_code})")
        return answer.json() if answer.content else {}
