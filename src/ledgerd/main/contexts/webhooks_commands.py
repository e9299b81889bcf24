"""The webhooks context's ``ledgerd`` commands: a ledger's endpoints, their dead letters, replay.

``WEBHOOKS``' description hands :func:`add_webhooks_commands` to the command line
(``BoundedContext.commands``); each command works on the database through the shared runner
(``ledgerd.main.command_runner``), as ``ledgerd outbox`` and ``republish`` do, so an operator
needs no token. Secrets are never printed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from dishka import AsyncContainer

from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.main.command_runner import EXIT_ERROR, run
from ledgerd.main.command_style import PLAIN_HELP, Command
from ledgerd.main.settings import Settings
from ledgerd.main.text_tables import columns
from ledgerd.webhooks.adapters.sealed_secrets import WebhookSecretSealing
from ledgerd.webhooks.adapters.sql_repositories import reseal_secrets
from ledgerd.webhooks.application.queries import WebhookQueries
from ledgerd.webhooks.application.replay_dead_letters import (
    ReplayDeadLetters,
    ReplayDeadLettersHandler,
)
from ledgerd.webhooks.domain.deliveries import WebhookView
from ledgerd.webhooks.domain.endpoints import EventFilter

webhooks = typer.Typer(
    name="webhooks",
    help="Webhooks: the HTTP endpoints a ledger's events are delivered to (docs/webhooks.md).",
    **PLAIN_HELP,
)


def _instant(instant: datetime | None) -> str:
    return "-" if instant is None else instant.isoformat(timespec="seconds")


def _filter_text(chosen: EventFilter) -> str:
    parts = []
    if chosen.event_types:
        parts.append(
            "types=" + ",".join(sorted(name.rpartition(".")[2] for name in chosen.event_types))
        )
    if chosen.accounts:
        parts.append("accounts=" + ",".join(sorted(chosen.accounts)))
    return " ".join(parts) or "all events"


def _row(view: WebhookView) -> tuple[str, ...]:
    endpoint, status = view.endpoint, view.status
    return (
        endpoint.id,
        "enabled" if endpoint.enabled else "disabled",
        str(status.delivered_sequence),
        str(status.failed_attempts),
        _instant(status.next_attempt_at),
        str(status.dead_letters),
        endpoint.url,
        _filter_text(endpoint.filter),
    )


@webhooks.command("list", cls=Command)
def list_webhooks(
    ledger: Annotated[str, typer.Argument(metavar="LEDGER", help="the ledger's id")],
) -> None:
    """List a ledger's webhooks: where each is in the ledger's events, failing or not."""

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        queries = await container.get(WebhookQueries)
        rows: list[tuple[str, ...]] = []
        cursor: str | None = None
        while True:
            page = await queries.list(ledger, cursor=cursor, limit=1000)
            rows.extend(_row(view) for view in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        headers = ("ID", "STATE", "THROUGH", "FAILED", "NEXT ATTEMPT", "DEAD", "URL", "FILTER")
        typer.echo(columns(headers, rows, right=("THROUGH", "FAILED", "DEAD")))
        return 0

    run(work)


@webhooks.command("dead-letters", cls=Command)
def list_dead_letters(
    webhook: Annotated[str, typer.Argument(metavar="WEBHOOK", help="the webhook's id")],
) -> None:
    """List a webhook's dead letters: the events it failed every attempt at."""

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        queries = await container.get(WebhookQueries)
        rows: list[tuple[str, ...]] = []
        cursor: str | None = None
        while True:
            page = await queries.dead_letters(None, webhook, cursor=cursor, limit=1000)
            rows.extend(
                (
                    str(letter.sequence),
                    letter.event_type,
                    str(letter.attempts),
                    _instant(letter.dead_at),
                    "requested" if letter.replay_requested else "-",
                    letter.last_error,
                )
                for letter in page.items
            )
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        headers = ("SEQUENCE", "TYPE", "ATTEMPTS", "DEAD AT", "REPLAY", "LAST ERROR")
        typer.echo(columns(headers, rows, right=("SEQUENCE", "ATTEMPTS")))
        return 0

    run(work)


@webhooks.command("replay", cls=Command)
def replay(
    webhook: Annotated[str, typer.Argument(metavar="WEBHOOK", help="the webhook's id")],
    from_sequence: Annotated[
        int,
        typer.Option(
            "--from", metavar="SEQUENCE", min=0, help="only dead letters of this sequence on"
        ),
    ] = 0,
) -> None:
    """Deliver a webhook's dead letters again, in order, before its next event.

    The running dispatcher (`ledgerd worker`, or `serve` on SQLite) delivers them.
    """

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        handler = await container.get(ReplayDeadLettersHandler)
        replayed = await handler(ReplayDeadLetters(None, webhook, from_sequence))
        typer.echo(f"{replayed} dead letters of webhook {webhook} will be delivered again")
        return 0

    run(work)


@webhooks.command("reseal", cls=Command)
def reseal() -> None:
    """Store every endpoint's secrets again, unchanged, sealed under LEDGERD_SIGNING_KEYS_SECRET.

    For secrets stored unencrypted (written before the key was set), or sealed under a key now
    in LEDGERD_SIGNING_KEYS_SECRET_PREVIOUS. No secret changes: receivers verify as before.
    """

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        sealing = await container.get(WebhookSecretSealing)
        if not sealing.seals:
            typer.echo(
                "error: LEDGERD_SIGNING_KEYS_SECRET is not set: nothing to encrypt with", err=True
            )
            return EXIT_ERROR
        uow = await container.get(UnitOfWork)
        async with uow.begin() as transaction:
            rewritten, failed = await reseal_secrets(sealing)
            await transaction.commit()
        typer.echo(f"{rewritten} webhooks' secrets encrypted under the current wrapping key")
        for webhook_id, reason in failed:
            typer.echo(f"error: webhook {webhook_id}: {reason}", err=True)
        return EXIT_ERROR if failed else 0

    run(work)


def add_webhooks_commands(cli: typer.Typer) -> None:
    """Add ``ledgerd webhooks list|dead-letters|replay`` to ``cli``."""
    cli.add_typer(webhooks)
