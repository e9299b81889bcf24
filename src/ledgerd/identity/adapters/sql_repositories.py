"""SQLAlchemy Core implementations of the identity context's ports (SQLite and PostgreSQL).

They take part in the caller's unit of work (``current_connection``), like the ledger's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, RowMapping, Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert, Update

from ledgerd.identity.adapters import tables
from ledgerd.identity.domain.authorization_codes import AuthorizationCode
from ledgerd.identity.domain.clients import ClientKind, OAuthClient
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.refresh_families import (
    RefreshFamily,
    RefreshPolicy,
    RevocationCause,
)
from ledgerd.identity.domain.scopes import Scope
from ledgerd.identity.domain.signing_key_store import StoredKeySet
from ledgerd.identity.domain.users import User
from ledgerd.kernel.errors import ConcurrencyConflictError
from ledgerd.kernel.principal import ALL_LEDGERS, LedgerGrant
from ledgerd.platform.db.bulk import on_postgres
from ledgerd.platform.db.unit_of_work import current_connection

# The one row of identity_signing_keys.
_KEY_SET_ROW = 1


def _insert_if_absent(table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``, in the current connection's dialect."""
    if on_postgres(current_connection()):
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _scopes_column(scopes: Iterable[Scope]) -> list[str]:
    return sorted(scope.value for scope in scopes)


def _scopes(stored: Sequence[str]) -> frozenset[Scope]:
    return frozenset(Scope(name) for name in stored)


async def _granted_ledgers(
    table: Table, owner: Column[str], owner_id: str, *, all_ledgers: bool
) -> LedgerGrant:
    if all_ledgers:
        return ALL_LEDGERS
    rows = await current_connection().execute(select(table.c.ledger_id).where(owner == owner_id))
    return frozenset(rows.scalars())


async def _add_ledgers(table: Table, owner_column: str, owner_id: str, grant: LedgerGrant) -> None:
    if grant is ALL_LEDGERS or not grant:
        return
    await current_connection().execute(
        insert(table),
        [{owner_column: owner_id, "ledger_id": ledger_id} for ledger_id in sorted(grant)],
    )


async def _client(row: RowMapping) -> OAuthClient:
    ledgers = await _granted_ledgers(
        tables.client_ledgers,
        tables.client_ledgers.c.client_id,
        row["client_id"],
        all_ledgers=row["all_ledgers"],
    )
    return OAuthClient(
        client_id=row["client_id"],
        name=row["name"],
        kind=ClientKind(row["kind"]),
        secret_hash=row["secret_hash"],
        grant=AccessGrant(_scopes(row["scopes"]), ledgers),
        created_at=row["created_at"],
        redirect_uris=tuple(row["redirect_uris"]),
        revoked_at=row["revoked_at"],
    )


class SqlClientRepository:
    """``ClientRepository``, ``ClientDirectory`` and ``ClientLedgerGrants``."""

    async def get(self, client_id: str) -> OAuthClient | None:
        query = select(tables.clients).where(tables.clients.c.client_id == client_id)
        row = (await current_connection().execute(query)).mappings().first()
        return None if row is None else await _client(row)

    async def add(self, client: OAuthClient) -> None:
        """A client id taken already fails the unit of work as a conflict (unique key)."""
        await current_connection().execute(
            insert(tables.clients).values(
                client_id=client.client_id,
                name=client.name,
                kind=client.kind.value,
                secret_hash=client.secret_hash,
                scopes=_scopes_column(client.grant.scopes),
                all_ledgers=client.grant.ledgers is ALL_LEDGERS,
                redirect_uris=list(client.redirect_uris),
                created_at=client.created_at,
                revoked_at=client.revoked_at,
            )
        )
        await _add_ledgers(
            tables.client_ledgers, "client_id", client.client_id, client.grant.ledgers
        )

    async def list_all(self) -> list[OAuthClient]:
        columns = tables.clients.c
        query = select(tables.clients).order_by(columns.created_at, columns.client_id)
        rows = (await current_connection().execute(query)).mappings().all()
        return [await _client(row) for row in rows]

    async def revoke(self, client_id: str, at: datetime) -> bool:
        columns = tables.clients.c
        result = await current_connection().execute(
            update(tables.clients)
            .where(columns.client_id == client_id, columns.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return bool(result.rowcount == 1)

    async def replace_secret(self, client_id: str, secret_hash: str) -> bool:
        columns = tables.clients.c
        result = await current_connection().execute(
            update(tables.clients)
            .where(
                columns.client_id == client_id,
                columns.revoked_at.is_(None),
                columns.kind == ClientKind.CONFIDENTIAL.value,
            )
            .values(secret_hash=secret_hash)
        )
        return bool(result.rowcount == 1)

    async def grant_ledger(self, client_id: str, ledger_id: str) -> None:
        # Recorded for an all-ledgers client too: it says which ledgers the client created,
        # and stays true if the client's grant is ever narrowed to a list.
        await current_connection().execute(
            _insert_if_absent(tables.client_ledgers).values(
                client_id=client_id, ledger_id=ledger_id
            )
        )


class SqlUserRepository:
    async def get_by_username(self, username: str) -> User | None:
        query = select(tables.users).where(tables.users.c.username == username)
        row = (await current_connection().execute(query)).mappings().first()
        if row is None:
            return None
        ledgers = await _granted_ledgers(
            tables.user_ledgers,
            tables.user_ledgers.c.user_id,
            row["user_id"],
            all_ledgers=row["all_ledgers"],
        )
        return User(
            user_id=row["user_id"],
            username=row["username"],
            password_hash=row["password_hash"],
            grant=AccessGrant(_scopes(row["scopes"]), ledgers),
            created_at=row["created_at"],
            disabled_at=row["disabled_at"],
        )

    async def add(self, user: User) -> None:
        """A user id or username taken already fails the unit of work as a conflict."""
        await current_connection().execute(
            insert(tables.users).values(
                user_id=user.user_id,
                username=user.username,
                password_hash=user.password_hash,
                scopes=_scopes_column(user.grant.scopes),
                all_ledgers=user.grant.ledgers is ALL_LEDGERS,
                created_at=user.created_at,
                disabled_at=user.disabled_at,
            )
        )
        await _add_ledgers(tables.user_ledgers, "user_id", user.user_id, user.grant.ledgers)


def _microseconds(duration: timedelta) -> int:
    return duration // timedelta(microseconds=1)


def _family_state(family: RefreshFamily) -> dict[str, Any]:
    """The columns that change over a family's life: rotation and revocation."""
    return {
        "current_digest": family.current_digest,
        "current_issued_at": family.current_issued_at,
        "generation": family.generation,
        "revoked_at": family.revoked_at,
        "revocation_cause": None
        if family.revocation_cause is None
        else family.revocation_cause.value,
    }


def _family(row: RowMapping) -> RefreshFamily:
    ledgers: LedgerGrant = ALL_LEDGERS if row["all_ledgers"] else frozenset(row["ledgers"])
    cause = row["revocation_cause"]
    return RefreshFamily(
        family_id=row["family_id"],
        client_id=row["client_id"],
        subject=row["subject"],
        grant=AccessGrant(_scopes(row["scopes"]), ledgers),
        policy=RefreshPolicy(
            absolute_lifetime=timedelta(microseconds=row["absolute_lifetime_us"]),
            idle_timeout=timedelta(microseconds=row["idle_timeout_us"]),
        ),
        started_at=row["started_at"],
        current_digest=row["current_digest"],
        current_issued_at=row["current_issued_at"],
        generation=row["generation"],
        revoked_at=row["revoked_at"],
        revocation_cause=None if cause is None else RevocationCause(cause),
    )


class SqlRefreshFamilyRepository:
    async def find_by_token_digest(self, digest: str) -> RefreshFamily | None:
        families, issued = tables.refresh_families, tables.refresh_tokens
        query = (
            select(families)
            .join(issued, issued.c.family_id == families.c.family_id)
            .where(issued.c.digest == digest)
        )
        row = (await current_connection().execute(query)).mappings().first()
        return None if row is None else _family(row)

    async def add(self, family: RefreshFamily) -> None:
        ledgers = family.grant.ledgers
        connection = current_connection()
        await connection.execute(
            insert(tables.refresh_families).values(
                family_id=family.family_id,
                client_id=family.client_id,
                subject=family.subject,
                scopes=_scopes_column(family.grant.scopes),
                all_ledgers=ledgers is ALL_LEDGERS,
                ledgers=[] if ledgers is ALL_LEDGERS else sorted(ledgers),
                absolute_lifetime_us=_microseconds(family.policy.absolute_lifetime),
                idle_timeout_us=_microseconds(family.policy.idle_timeout),
                started_at=family.started_at,
                **_family_state(family),
            )
        )
        await connection.execute(
            insert(tables.refresh_tokens).values(
                digest=family.current_digest, family_id=family.family_id
            )
        )

    async def update(self, family: RefreshFamily, *, read_generation: int) -> None:
        columns = tables.refresh_families.c
        connection = current_connection()
        # Compare-and-set: on PostgreSQL a concurrent update of the row waits for the first
        # to commit, then finds the generation moved and matches nothing.
        result = await connection.execute(
            update(tables.refresh_families)
            .where(columns.family_id == family.family_id, columns.generation == read_generation)
            .values(**_family_state(family))
        )
        if result.rowcount != 1:
            msg = f"refresh family {family.family_id} changed since generation {read_generation}"
            raise ConcurrencyConflictError(msg)
        # A rotation issued a new digest; a revocation kept the current one, already indexed.
        await connection.execute(
            _insert_if_absent(tables.refresh_tokens).values(
                digest=family.current_digest, family_id=family.family_id
            )
        )

    async def is_revoked(self, family_id: str) -> bool:
        """False for a family that is not stored, as for one that is live."""
        columns = tables.refresh_families.c
        query = select(columns.revoked_at).where(columns.family_id == family_id)
        revoked_at = (await current_connection().execute(query)).scalar_one_or_none()
        return revoked_at is not None


def _grant_columns(grant: AccessGrant) -> dict[str, Any]:
    """A grant as a snapshot: scopes, all_ledgers and the ledger ids (empty for all)."""
    ledgers = grant.ledgers
    return {
        "scopes": _scopes_column(grant.scopes),
        "all_ledgers": ledgers is ALL_LEDGERS,
        "ledgers": [] if ledgers is ALL_LEDGERS else sorted(ledgers),
    }


def _code_state(code: AuthorizationCode) -> dict[str, Any]:
    """The columns that change over a code's life: its redemption and a reuse."""
    return {
        "redeemed_at": code.redeemed_at,
        "issued_refresh_digest": code.issued_refresh_digest,
        "reuse_detected_at": code.reuse_detected_at,
    }


def _code(row: RowMapping) -> AuthorizationCode:
    ledgers: LedgerGrant = ALL_LEDGERS if row["all_ledgers"] else frozenset(row["ledgers"])
    return AuthorizationCode(
        code_digest=row["code_digest"],
        client_id=row["client_id"],
        redirect_uri=row["redirect_uri"],
        code_challenge=row["code_challenge"],
        subject=row["subject"],
        grant=AccessGrant(_scopes(row["scopes"]), ledgers),
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
        redeemed_at=row["redeemed_at"],
        issued_refresh_digest=row["issued_refresh_digest"],
        reuse_detected_at=row["reuse_detected_at"],
    )


class SqlAuthorizationCodeRepository:
    """``AuthorizationCodeRepository``: codes by digest, redeemed by compare-and-set."""

    async def add(self, code: AuthorizationCode) -> None:
        await current_connection().execute(
            insert(tables.authorization_codes).values(
                code_digest=code.code_digest,
                client_id=code.client_id,
                redirect_uri=code.redirect_uri,
                code_challenge=code.code_challenge,
                subject=code.subject,
                issued_at=code.issued_at,
                expires_at=code.expires_at,
                **_grant_columns(code.grant),
                **_code_state(code),
            )
        )

    async def find_by_digest(self, code_digest: str) -> AuthorizationCode | None:
        codes = tables.authorization_codes
        query = select(codes).where(codes.c.code_digest == code_digest)
        row = (await current_connection().execute(query)).mappings().first()
        return None if row is None else _code(row)

    async def update(self, code: AuthorizationCode, *, was_redeemed: bool) -> None:
        columns = tables.authorization_codes.c
        # Compare-and-set on the redeemed state read: on PostgreSQL a concurrent redemption's
        # update waits for the first to commit, then finds the code redeemed and matches nothing.
        redeemed_state = (
            columns.redeemed_at.is_not(None) if was_redeemed else columns.redeemed_at.is_(None)
        )
        result = await current_connection().execute(
            update(tables.authorization_codes)
            .where(columns.code_digest == code.code_digest, redeemed_state)
            .values(**_code_state(code))
        )
        if result.rowcount != 1:
            msg = "the authorization code was redeemed concurrently"
            raise ConcurrencyConflictError(msg)


class SqlSigningKeyStore:
    """``SigningKeyStore`` on the one row of ``identity_signing_keys``."""

    async def load(self) -> StoredKeySet | None:
        columns = tables.signing_keys.c
        query = select(columns.version, columns.key_set).where(columns.id == _KEY_SET_ROW)
        row = (await current_connection().execute(query)).first()
        return None if row is None else StoredKeySet(row.version, row.key_set)

    async def version(self) -> int | None:
        columns = tables.signing_keys.c
        query = select(columns.version).where(columns.id == _KEY_SET_ROW)
        version: int | None = (await current_connection().execute(query)).scalar_one_or_none()
        return version

    async def save(self, text: str, *, read_version: int | None) -> StoredKeySet:
        columns = tables.signing_keys.c
        statement: Insert | Update
        if read_version is None:
            # The first set: of two processes storing one at once, the second inserts nothing
            # (PostgreSQL makes it wait for the first's commit to know).
            statement = _insert_if_absent(tables.signing_keys).values(
                id=_KEY_SET_ROW, version=1, key_set=text
            )
        else:
            statement = (
                update(tables.signing_keys)
                .where(columns.id == _KEY_SET_ROW, columns.version == read_version)
                .values(version=read_version + 1, key_set=text)
            )
        result = await current_connection().execute(statement)
        if result.rowcount != 1:
            msg = f"the signing key set changed since version {read_version}"
            raise ConcurrencyConflictError(msg)
        return StoredKeySet(1 if read_version is None else read_version + 1, text)
