"""The ``ledgerd`` command line: each command builds the container, runs, and closes it."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

import typer
from dishka import AsyncContainer
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.errors import LedgerdError
from ledgerd.ledger.application.change_account_status import ChangeAccountStatusHandler
from ledgerd.ledger.application.create_ledger import CreateLedgerHandler
from ledgerd.ledger.application.expire_pending import ExpirePending, ExpirePendingHandler
from ledgerd.ledger.application.open_account import OpenAccountHandler
from ledgerd.ledger.application.post_transfers import PostTransfersHandler
from ledgerd.ledger.application.queries import LedgerQueries
from ledgerd.ledger.application.verify_ledger import VerifyLedger, VerifyLedgerHandler
from ledgerd.ledger.entrypoints.demo import Demo, DemoHandlers
from ledgerd.ledger.entrypoints.report import verification_summary
from ledgerd.ledger.entrypoints.worker import run_expiry_loop
from ledgerd.main.container import build_container
from ledgerd.main.grpc_server import start_grpc_server
from ledgerd.main.settings import Settings
from ledgerd.platform.db import migrations
from ledgerd.platform.db.engine import is_sqlite

app = typer.Typer(
    name="ledgerd",
    help="ledgerd: an async double-entry ledger. Configure with LEDGERD_* environment variables.",
    no_args_is_help=True,
    add_completion=False,
)

EXIT_PROBLEMS = 1
EXIT_ERROR = 2


class SchemaNotCurrentError(Exception):
    def __init__(self, revision: str | None) -> None:
        super().__init__(
            f"the database is at revision {revision or 'none'}, not the latest: "
            "run `ledgerd migrate` first"
        )


def _run(work: Callable[[AsyncContainer, Settings], Awaitable[int]]) -> None:
    async def main() -> int:
        settings = Settings()
        logging.basicConfig(
            level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        # Alembic narrates every step at INFO; the commands report the outcome themselves.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        container = build_container(settings)
        try:
            return await work(container, settings)
        except LedgerdError as error:
            typer.echo(f"error {error.code}: {error.message}", err=True)
            return EXIT_ERROR
        except SchemaNotCurrentError as error:
            typer.echo(f"error: {error}", err=True)
            return EXIT_ERROR
        finally:
            await container.close()

    raise typer.Exit(asyncio.run(main()))


async def _ensure_schema(container: AsyncContainer, settings: Settings) -> None:
    """The embedded database migrates itself; a shared server is migrated on purpose only."""
    engine = await container.get(AsyncEngine)
    current = await migrations.current_revision(engine)
    if current == migrations.head_revision():
        return
    if not is_sqlite(settings.database_url):
        raise SchemaNotCurrentError(current)
    await migrations.upgrade(engine)


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
    downgrade: Annotated[bool, typer.Option(help="migrate down to REVISION (e.g. base)")] = False,
) -> None:
    """Upgrade (or downgrade) the database schema."""

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        engine = await container.get(AsyncEngine)
        if downgrade:
            await migrations.downgrade(engine, revision)
        else:
            await migrations.upgrade(engine, revision)
        typer.echo(f"database at revision {await migrations.current_revision(engine)}")
        return 0

    _run(work)


@app.command()
def demo(
    ledger: Annotated[
        str | None, typer.Option(help="ledger id to create (default: demo-<timestamp>)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed for the demo's amounts")] = 7,
) -> None:
    """Create a ledger with accounts and a few hundred transfers, then print and verify it."""

    async def work(container: AsyncContainer, settings: Settings) -> int:
        await _ensure_schema(container, settings)
        handlers = DemoHandlers(
            create_ledger=await container.get(CreateLedgerHandler),
            open_account=await container.get(OpenAccountHandler),
            change_status=await container.get(ChangeAccountStatusHandler),
            post=await container.get(PostTransfersHandler),
            expire=await container.get(ExpirePendingHandler),
            queries=await container.get(LedgerQueries),
            verify=await container.get(VerifyLedgerHandler),
        )
        ledger_id = ledger or f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        report = await Demo(handlers, ledger_id, typer.echo, seed).run()
        typer.echo(f"\ncheck it again any time: ledgerd verify {ledger_id}")
        return 0 if report.ok else EXIT_PROBLEMS

    _run(work)


@app.command()
def verify(ledger: Annotated[str, typer.Argument(help="the ledger to check")]) -> None:
    """Re-check a ledger's hash chain and that debits equal credits; exit 1 on any problem."""

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        handler = await container.get(VerifyLedgerHandler)
        report = await handler(VerifyLedger(ledger))
        typer.echo(verification_summary(report))
        return 0 if report.ok else EXIT_PROBLEMS

    _run(work)


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, so the process can wind down instead of dying."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


@app.command()
def serve() -> None:
    """Run the API (gRPC, with health and reflection) and the expiry sweep until SIGTERM."""

    async def work(container: AsyncContainer, settings: Settings) -> int:
        await _ensure_schema(container, settings)
        stop = _stop_on_signals()
        server = await start_grpc_server(container, settings.grpc_address)
        host = settings.grpc_address.rpartition(":")[0]
        typer.echo(f"gRPC  {host}:{server.port}  (ledgerd.v1.LedgerService, health, reflection)")
        expiry = asyncio.create_task(
            run_expiry_loop(
                await container.get(ExpirePendingHandler),
                stop,
                interval_s=settings.expiry_interval_seconds,
            )
        )
        await stop.wait()
        typer.echo("stopping: finishing calls in flight")
        await server.stop(settings.shutdown_grace_seconds)
        await expiry
        typer.echo("ledgerd stopped")
        return 0

    _run(work)


@app.command()
def worker(
    interval: Annotated[
        float | None, typer.Option(help="seconds between expiry sweeps (default from settings)")
    ] = None,
) -> None:
    """Run background work until SIGTERM/SIGINT: expire holds whose timeout has passed."""

    async def work(container: AsyncContainer, settings: Settings) -> int:
        await _ensure_schema(container, settings)
        handler = await container.get(ExpirePendingHandler)
        stop = _stop_on_signals()
        every = interval if interval is not None else settings.expiry_interval_seconds
        typer.echo(f"worker running: expiry sweep every {every} s; stop with SIGTERM or Ctrl-C")
        await run_expiry_loop(handler, stop, interval_s=every)
        typer.echo("worker stopped")
        return 0

    _run(work)


@app.command()
def expire() -> None:
    """Void every pending transfer whose timeout has passed (the worker does this routinely)."""

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        handler = await container.get(ExpirePendingHandler)
        typer.echo(f"{await handler(ExpirePending())} holds expired")
        return 0

    _run(work)
