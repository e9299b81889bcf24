"""A webhook endpoint: where a ledger's events go, which of them, and the secrets that sign them.

The URL is checked here (``check_url``): http or https, a host, an optional port, no user
name or password (the URL is shown in listings and logs, so it must hold no credential) and no
fragment (HTTP never sends one). Registering one needs the ``webhooks.write`` scope
(docs/webhooks.md, "Security"). A host that is an IP address must be one the address policy
allows (``addresses.py``: public, or in an allowed network); a host name is not resolved here,
the sender checks what it resolves to when it connects.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from ledgerd.kernel.errors import validation_error
from ledgerd.webhooks.domain.addresses import AddressPolicy

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 200
# The accounts one filter may name: a filter is matched against every event of its ledger.
MAX_FILTER_ACCOUNTS = 100
# Entries of a filter's type list (there are a dozen types; the bound keeps the check cheap).
MAX_FILTER_EVENT_TYPES = 50
# The endpoints of one ledger: each is a delivery task and a row per event in the attempts.
MAX_ENDPOINTS_PER_LEDGER = 50
DEFAULT_SECRET_GRACE = timedelta(hours=24)
MAX_SECRET_GRACE = timedelta(days=7)
# A secret: the prefix says what it is (in a vault, a log a user pasted), 32 random bytes in hex.
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
_SECRET_BYTES = 32
_SCHEMES = frozenset({"http", "https"})


def new_signing_secret() -> str:
    """A fresh secret: ``whsec_`` and 64 hex digits (256 random bits)."""
    return SECRET_PREFIX + secrets.token_hex(_SECRET_BYTES)


def check_url(value: object, addresses: AddressPolicy, field: str = "url") -> str:
    """``value`` if it is a URL ledgerd may deliver to; VALIDATION_FAILED saying why not."""
    if not isinstance(value, str) or not value:
        raise validation_error(field, "is required")
    if len(value) > MAX_URL_LENGTH:
        raise validation_error(field, f"must be at most {MAX_URL_LENGTH} characters")
    if not value.isascii() or not value.isprintable() or " " in value:
        # An IRI must be sent percent-encoded: what is stored is exactly what is requested.
        raise validation_error(field, "must be ASCII without spaces (percent-encode the rest)")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise validation_error(field, f"is not a URL: {error}") from None
    if parts.scheme not in _SCHEMES:
        raise validation_error(field, "must start with http:// or https://")
    if not parts.hostname:
        raise validation_error(field, "must name a host")
    if parts.username is not None or parts.password is not None:
        raise validation_error(
            field, "must not hold a user name or password (verify the signature instead)"
        )
    if parts.fragment or value.endswith("#"):
        raise validation_error(field, "must not have a #fragment (HTTP does not send it)")
    _check_destination(parts.hostname, port, addresses, field)
    return value


def _check_destination(host: str, port: int | None, addresses: AddressPolicy, field: str) -> None:
    if port == 0:
        raise validation_error(field, "port 0 is no port to deliver to")
    refused = addresses.refusal_of_literal(host)
    if refused is not None:
        raise validation_error(field, refused)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events an endpoint receives: of one of ``event_types``, about one of ``accounts``.

    An empty set does not restrict: no types named means every type, no accounts every event.
    """

    event_types: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()

    def matches(self, event_type: str, accounts: frozenset[str]) -> bool:
        """Whether an event of ``event_type`` concerning ``accounts`` is for this endpoint."""
        if self.event_types and event_type not in self.event_types:
            return False
        return not self.accounts or not self.accounts.isdisjoint(accounts)

    @property
    def needs_accounts(self) -> bool:
        """Whether matching needs to know the accounts an event concerns (its payload)."""
        return bool(self.accounts)


@dataclass(frozen=True, slots=True)
class SigningSecrets:
    """The secret that signs deliveries, and the one before it while its grace lasts.

    Rotating keeps at most two: the new one and the one it replaces; a secret replaced earlier
    stops signing at once even if its own grace had not run out.

    ``unreadable`` says why the stored secrets cannot be used (sealed under a wrapping key this
    process does not hold): then none signs, and every delivery to the endpoint fails with that
    reason until the key is given or the secret rotated.
    """

    current: str
    previous: str | None = None
    previous_expires_at: datetime | None = None
    unreadable: str | None = None

    def signing_at(self, now: datetime) -> tuple[str, ...]:
        """The secrets a delivery made at ``now`` is signed with: the current one first."""
        if self.unreadable is not None:
            return ()
        if (
            self.previous is not None
            and self.previous_expires_at is not None
            and now < self.previous_expires_at
        ):
            return (self.current, self.previous)
        return (self.current,)

    def rotated(self, new: str, now: datetime, grace: timedelta) -> SigningSecrets:
        """``new`` signs from now on; the current one too, for ``grace`` (none: not at all).

        Unreadable secrets are dropped: ``new`` alone signs, as after a rotation without grace.
        """
        if grace <= timedelta(0) or self.unreadable is not None:
            return SigningSecrets(new)
        return SigningSecrets(new, self.current, now + grace)


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    ledger: str
    url: str
    description: str
    filter: EventFilter
    enabled: bool
    secrets: SigningSecrets
    created_at: datetime
    updated_at: datetime
    # The idempotency key it was created with (None: created without one); never changes.
    idempotency_key: str | None = None

    def changed(
        self,
        now: datetime,
        *,
        url: str | None = None,
        description: str | None = None,
        event_filter: EventFilter | None = None,
    ) -> WebhookEndpoint:
        """The endpoint with what is given replaced (None: kept), stamped ``now``."""
        return replace(
            self,
            url=self.url if url is None else url,
            description=self.description if description is None else description,
            filter=self.filter if event_filter is None else event_filter,
            updated_at=now,
        )

    def with_enabled(self, enabled: bool, now: datetime) -> WebhookEndpoint:  # noqa: FBT001 - the state to set, named by the method
        if enabled == self.enabled:
            return self
        return replace(self, enabled=enabled, updated_at=now)

    def with_secrets(self, secrets: SigningSecrets, now: datetime) -> WebhookEndpoint:
        return replace(self, secrets=secrets, updated_at=now)
