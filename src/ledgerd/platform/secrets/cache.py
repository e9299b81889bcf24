"""The values of the references in use, read at start-up and refreshed in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from ledgerd.platform.secrets.ports import SecretError, SecretStore
from ledgerd.platform.secrets.references import SecretReference, StoreName
from ledgerd.platform.secrets.secret import Secret

log = logging.getLogger(__name__)


class SecretCache:
    """Holds the current value of each reference resolved through it.

    ``resolve`` reads a reference for the first time and fails if it cannot; from then on
    ``current`` answers from memory (no I/O: the database's connect hook calls it) and
    ``run`` re-reads every reference each ``ttl_s``, so a rotated value is seen within that.
    A store that stops answering leaves the values as they were: one warning when the outage
    starts, one line when it ends, nothing in between.
    """

    def __init__(self, stores: Mapping[StoreName, SecretStore], *, ttl_s: float) -> None:
        self._stores = dict(stores)
        self._ttl_s = ttl_s
        self._values: dict[SecretReference, Secret] = {}
        self._failing: set[StoreName] = set()

    @property
    def stores(self) -> tuple[StoreName, ...]:
        return tuple(self._stores)

    @property
    def references(self) -> tuple[SecretReference, ...]:
        return tuple(self._values)

    async def resolve(self, reference: SecretReference) -> Secret:
        """The value now, remembered for ``current``; ``SecretError`` if it cannot be read."""
        store = self._stores.get(reference.store)
        if store is None:
            raise SecretError(reference, f"no {reference.store} store is configured")
        value = await store.read(reference)
        self._values[reference] = value
        return value

    def current(self, reference: SecretReference) -> Secret:
        """The last value read (``resolve`` must have succeeded once)."""
        return self._values[reference]

    async def refresh(self) -> None:
        """Re-read every reference once; a failure keeps the value it had."""
        failed: set[StoreName] = set()
        for reference in self.references:
            previous = self._values[reference]
            try:
                value = await self.resolve(reference)
            except Exception as error:  # noqa: BLE001 - whatever the store did, serving goes on
                if reference.store not in self._failing | failed:
                    reason = _reason(error)
                    log.warning(
                        "secret %s could not be refreshed (%s); keeping the value read before",
                        reference,
                        reason,
                    )
                failed.add(reference.store)
                continue
            if value != previous:
                log.info("secret %s changed: new connections use the new value", reference)
        for store in sorted(self._failing - failed):
            log.info("the %s secret store answers again", store)
        self._failing = failed

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every ``ttl_s`` until ``stop`` is set."""
        while not stop.is_set():
            if not self._values:
                await stop.wait()  # nothing to refresh
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._ttl_s)
            if not stop.is_set():
                await self.refresh()

    async def aclose(self) -> None:
        for store in self._stores.values():
            await store.aclose()


def _reason(error: Exception) -> str:
    # Another exception's text is not ours to vouch for (it might quote what was read).
    return error.reason if isinstance(error, SecretError) else type(error).__name__
