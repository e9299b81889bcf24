"""The ledger's ``ledgerd`` commands: the demo, the checks, the expiry sweep, the API client.

``LEDGER``'s description hands :func:`add_ledger_commands` to the command line
(``BoundedContext.commands``); each command runs through the shared runner
(``ledgerd.main.command_runner``), as the program's own commands do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from dishka import AsyncContainer

from ledgerd.ledger.application.expire_pending import ExpirePending, ExpirePendingHandler
from ledgerd.ledger.application.replay_ledger import ReplayLedger, ReplayLedgerHandler
from ledgerd.ledger.application.verify_ledger import VerifyLedger, VerifyLedgerHandler
from ledgerd.ledger.entrypoints.cli.demo import Demo, DemoHandlers
from ledgerd.ledger.entrypoints.cli.report import replay_summary, verification_summary
from ledgerd.main.command_runner import EXIT_PROBLEMS, ensure_schema, run
from ledgerd.main.command_style import Command
from ledgerd.main.contexts.ledger_client_commands import add_ledger_client_commands
from ledgerd.main.settings import Settings


def demo(
    ledger: Annotated[
        str | None, typer.Option(help="ledger id to create (default: demo-<timestamp>)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed for the demo's amounts")] = 7,
) -> None:
    """Create a ledger with accounts and a few hundred transfers, then print and verify it."""

    async def work(container: AsyncContainer, settings: Settings) -> int:
        await ensure_schema(container, settings)
        handlers = await container.get(DemoHandlers)
        ledger_id = ledger or f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        report = await Demo(handlers, ledger_id, typer.echo, seed).run()
        typer.echo(f"\ncheck it again any time: ledgerd verify {ledger_id}")
        return 0 if report.ok else EXIT_PROBLEMS

    run(work, creates_database=True)


def verify(
    ledger: Annotated[str, typer.Argument(metavar="LEDGER", help="the ledger to check")],
) -> None:
    """Re-check a ledger's hash chain and that debits equal credits; exit 1 on any problem."""

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        handler = await container.get(VerifyLedgerHandler)
        report = await handler(VerifyLedger(ledger))
        typer.echo(verification_summary(report))
        return 0 if report.ok else EXIT_PROBLEMS

    run(work)


def replay(
    ledger: Annotated[str, typer.Argument(metavar="LEDGER", help="the ledger to rebuild")],
) -> None:
    """Rebuild every balance from the ledger's events; exit 1 if they differ from the stored."""

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        handler = await container.get(ReplayLedgerHandler)
        report = await handler(ReplayLedger(ledger))
        typer.echo(replay_summary(report))
        return 0 if report.ok else EXIT_PROBLEMS

    run(work)


def expire() -> None:
    """Void every pending transfer whose timeout has passed (the worker does this routinely)."""

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        handler = await container.get(ExpirePendingHandler)
        typer.echo(f"{await handler(ExpirePending())} holds expired")
        return 0

    run(work)


def add_ledger_commands(cli: typer.Typer) -> None:
    """Add the ledger's commands to ``cli``: those on the database, then the API client's."""
    for command in (demo, verify, replay, expire):
        cli.command(cls=Command)(command)
    add_ledger_client_commands(cli)
