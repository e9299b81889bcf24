"""Who may call what: the request pipeline's authentication, wired to the identity context.

The concern (``ledgerd.platform.api.authentication``) asks three questions of storage, each
answered here by the identity context's repositories, each in a read transaction of its own:
whether a refresh-token family was revoked, whether a principal may use a ledger now (its token
names the ledgers granted when it was issued; a ledger created since is granted in storage only),
and — for ``CreateLedger`` — the ledger context records the new ledger's grant to its creator
through its own port, implemented here on identity's, inside the creating transaction.

The ledger and identity contexts never import each other: this module of the composition root is
where they meet. The streaming context's single-use stream tickets (``SingleUseTickets``, for
browsers' event streams) are redeemed by the same concern; it needs that context's providers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dishka import Provider, Scope, provide

from ledgerd.identity.domain.ledger_grants import ClientLedgerGrants
from ledgerd.identity.domain.repositories import ClientRepository, RefreshFamilyRepository
from ledgerd.kernel.clock import Clock
from ledgerd.kernel.principal import ALL_LEDGERS, Principal
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application.create_ledger import LedgerCreatorGrants
from ledgerd.main.bounded_context import GrpcService, merged_access
from ledgerd.main.call_pipeline import UNADMITTED_SERVICES
from ledgerd.main.settings import Settings
from ledgerd.main.tls_settings import MtlsGrant
from ledgerd.platform.api.authentication import (
    Authentication,
    CachedRevocations,
    SingleUseTickets,
    TokenVerifier,
)
from ledgerd.platform.api.verified_tokens import CachedTokenVerifier
from ledgerd.platform.auth.access_tokens import AccessTokenVerifier
from ledgerd.platform.auth.keys import KeyRing


class StoredRevocations:
    """Whether a family was revoked, as the identity context's storage says."""

    def __init__(self, uow: UnitOfWork, families: RefreshFamilyRepository) -> None:
        self._uow, self._families = uow, families

    async def is_revoked(self, family_id: str) -> bool:
        async with self._uow.begin(read_only=True):
            return await self._families.is_revoked(family_id)


class StoredClientGrants:
    """A client's ledgers as stored now: the token's grant plus any ledger it created since."""

    def __init__(self, uow: UnitOfWork, clients: ClientRepository) -> None:
        self._uow, self._clients = uow, clients

    async def may_use_ledger(self, principal: Principal, ledger_id: str) -> bool:
        async with self._uow.begin(read_only=True):
            client = await self._clients.get(principal.subject)
        if client is None or not client.is_active:
            return False  # a user's token, or a client revoked since: its token's grant only
        return client.grant.principal(client.client_id).may_use_ledger(ledger_id)


class CreatorGrantsOnClients:
    """The ledger context's ``LedgerCreatorGrants``: the creating client is granted the ledger.

    Runs inside ``CreateLedger``'s unit of work, so the ledger and its grant commit together. A
    principal that is no client (a user's token from the authorization-code flow) records no
    grant: the ledger is then visible to clients granted every ledger, and to the user through
    a client once granted by an administrator (docs/security.md).
    """

    def __init__(self, clients: ClientRepository, grants: ClientLedgerGrants) -> None:
        self._clients, self._grants = clients, grants

    async def grant(self, principal: Principal, ledger_id: str) -> None:
        client = await self._clients.get(principal.subject)
        if client is None:
            return
        await self._grants.grant_ledger(client.client_id, ledger_id)


class UnrecordedCreatorGrants:
    """``LEDGERD_AUTH=off``: no call is authenticated, so there is nobody to grant a ledger to.

    ``CreateLedger`` records a grant only for an authenticated caller, and none is while
    authentication is off: reaching this is a wiring mistake, said loudly.
    """

    async def grant(self, principal: Principal, ledger_id: str) -> None:
        msg = f"ledger {ledger_id} created by {principal.subject}, but no grants are recorded"
        raise RuntimeError(msg)


class ConfiguredPeerGrants:
    """``LEDGERD_MTLS_IDENTITIES``: a client certificate's identity granted like a client.

    The principal's subject is the identity itself (``spiffe://ledgerd.test/payouts``); it is no
    stored client, so its grant is exactly the configured one (a ledger it creates is not added).
    """

    def __init__(self, grants: Mapping[str, MtlsGrant]) -> None:
        self._principals = {
            identity: Principal(
                subject=identity,
                scopes=frozenset(grant.scopes),
                ledgers=ALL_LEDGERS if grant.ledgers == "*" else frozenset(grant.ledgers),
            )
            for identity, grant in grants.items()
        }

    def principal_of(self, identity: str) -> Principal | None:
        return self._principals.get(identity)


@dataclass(frozen=True, slots=True)
class PipelineAuthentication:
    """The pipeline's authentication concern, or None: ``LEDGERD_AUTH=off``."""

    concern: Authentication | None


class RequiredAuthenticationProvider(Provider):
    """``LEDGERD_AUTH=required``: tokens checked by the identity context's keys and storage.

    It needs the identity context's providers; without them the container refuses to build,
    naming the missing one.
    """

    scope = Scope.APP

    def __init__(self, services: Sequence[GrpcService]) -> None:
        super().__init__()
        self._services = tuple(services)

    @provide
    def authentication(  # noqa: PLR0913, PLR0917 - dishka injects one dependency per parameter
        self,
        settings: Settings,
        uow: UnitOfWork,
        verifier: AccessTokenVerifier,
        keys: KeyRing,
        clock: Clock,
        families: RefreshFamilyRepository,
        clients: ClientRepository,
        tickets: SingleUseTickets,
    ) -> PipelineAuthentication:
        hidden = {service.name: service.hidden for service in self._services if service.hidden}
        # Verifying a token's signature is most of authentication's cost per call: a token that
        # verified is remembered a while (bench/auth.py measures what that saves).
        tokens: TokenVerifier = verifier
        if settings.verified_token_cache_seconds > 0:
            tokens = CachedTokenVerifier(
                verifier, keys, clock, ttl_s=settings.verified_token_cache_seconds
            )
        revocations = CachedRevocations(
            StoredRevocations(uow, families), ttl_s=settings.revocation_cache_seconds
        )
        return PipelineAuthentication(
            Authentication(
                verifier=tokens,
                revocations=revocations,
                live_grants=StoredClientGrants(uow, clients),
                access=merged_access(self._services),
                hidden=hidden,
                public_services=UNADMITTED_SERVICES,
                peers=ConfiguredPeerGrants(settings.mtls_identities),
                tickets=tickets,
            )
        )

    @provide
    def creator_grants(
        self, clients: ClientRepository, grants: ClientLedgerGrants
    ) -> LedgerCreatorGrants:
        return CreatorGrantsOnClients(clients, grants)


class OpenAccessProvider(Provider):
    """``LEDGERD_AUTH=off``: no concern; nobody is authenticated, so no grant is recorded."""

    scope = Scope.APP

    @provide
    def authentication(self) -> PipelineAuthentication:
        return PipelineAuthentication(None)

    creator_grants = provide(UnrecordedCreatorGrants, provides=LedgerCreatorGrants)


def access_control(settings: Settings, services: Sequence[GrpcService]) -> Provider:
    """The provider of who may call what, as ``LEDGERD_AUTH`` says."""
    if settings.auth == "required":
        return RequiredAuthenticationProvider(services)
    return OpenAccessProvider()
