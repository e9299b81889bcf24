"""OpenBao's database secrets engine, set up on a test's PostgreSQL database.

The engine logs in as the test server's admin role and makes one login role per lease. The
tables are the admin's (``ledgerd migrate`` runs with the admin's URL): a leased role is
granted what ``serve`` needs on them, reading and writing rows, no DDL. Its revocation ends
the role's sessions and drops it, as a forced revocation would in production.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from tests.openbao import OpenBao

ROLE = "ledgerd"
CREATION_STATEMENTS = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'",
    'GRANT USAGE ON SCHEMA public TO "{{name}}"',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{{name}}"',
    'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO "{{name}}"',
]
REVOCATION_STATEMENTS = [
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}'",
    'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{{name}}"',
    'REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "{{name}}"',
    'REVOKE USAGE ON SCHEMA public FROM "{{name}}"',
    'DROP ROLE IF EXISTS "{{name}}"',
]


@dataclass(frozen=True, slots=True)
class DatabaseEngine:
    server: OpenBao
    mount: str

    @property
    def reference(self) -> str:
        return f"secret://vault-db/{self.mount}/creds/{ROLE}"

    def lease_ids(self) -> list[str]:
        """The ids of the role's leases now in force."""
        prefix = f"{self.mount}/creds/{ROLE}/"
        try:
            keys = self.server.call("LIST", f"sys/leases/lookup/{prefix}")["data"]["keys"]
        except Exception:  # noqa: BLE001 - a 404: no lease at all
            return []
        return [prefix + key for key in keys]

    def lease(self, lease_id: str) -> dict[str, object]:
        data: dict[str, object] = self.server.call(
            "PUT", "sys/leases/lookup", {"lease_id": lease_id}
        )["data"]
        return data

    def revoke(self, lease_id: str) -> None:
        self.server.call("PUT", "sys/leases/revoke", {"lease_id": lease_id})


@contextlib.contextmanager
def database_engine(
    server: OpenBao, database_url: str, *, default_ttl: str, max_ttl: str
) -> Iterator[DatabaseEngine]:
    """A database engine mounted for this test, its role ``ledgerd`` on ``database_url``."""
    mount = f"db-{secrets.token_hex(4)}"
    url = make_url(database_url)
    host = f"{url.host}:{url.port or 5432}" if url.host else ""
    socket = f"&host={url.query['host']}" if "host" in url.query else ""
    server.call("POST", f"sys/mounts/{mount}", {"type": "database"})
    try:
        server.call(
            "POST",
            f"{mount}/config/pg",
            {
                "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://{{username}}:{{password}}@"
                f"{host}/{url.database}?sslmode=disable{socket}",
                "username": url.username or "postgres",
                # Local connections are trusted: the password is not checked.
                "password": url.password or "trust-" + secrets.token_hex(4),
                "allowed_roles": ROLE,
            },
        )
        server.call(
            "POST",
            f"{mount}/roles/{ROLE}",
            {
                "db_name": "pg",
                "creation_statements": CREATION_STATEMENTS,
                "revocation_statements": REVOCATION_STATEMENTS,
                "default_ttl": default_ttl,
                "max_ttl": max_ttl,
            },
        )
        yield DatabaseEngine(server, mount)
    finally:
        # Unmounting revokes every lease left: their roles are dropped before the database.
        with contextlib.suppress(Exception):
            server.call("DELETE", f"sys/mounts/{mount}")
