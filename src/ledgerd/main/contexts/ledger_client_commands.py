"""The ledger's client commands: ``ledgers list``, ``accounts list``, ``balance``, ``transfers``.

Each asks a running ``ledgerd serve`` through the ledger's API client
(``ledger_api_client.py``) over the shared plumbing (``main/client_commands.py``,
``main/api_client.py``), and prints what the ledger's API answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from ledgerd.main.api_client import DEFAULT_SERVER, DEFAULT_TIMEOUT_S, EXIT_ERROR, ClientError
from ledgerd.main.client_commands import (
    Limit,
    Output,
    OutputOption,
    Server,
    Timeout,
    Token,
    as_json,
    ask,
    say_if_more,
)
from ledgerd.main.command_style import PLAIN_HELP, Command
from ledgerd.main.contexts.ledger_api_client import LedgerClient, connect_ledger
from ledgerd.main.text_tables import amount, columns, fields, pairs
from ledgerd.v1 import ledger_pb2 as pb

_AMOUNTS = (
    "Amounts in a table are in the asset's units (1234 of USD/2 prints as 12.34); "
    "--output json prints the API's minor units."
)

LedgerArgument = Annotated[str, typer.Argument(metavar="LEDGER", help="the ledger's id")]

ledgers = typer.Typer(name="ledgers", help="The server's ledgers.", **PLAIN_HELP)
accounts = typer.Typer(name="accounts", help="A ledger's accounts.", **PLAIN_HELP)
transfers = typer.Typer(name="transfers", help="A ledger's transfers.", **PLAIN_HELP)


@ledgers.command("list", cls=Command)
def list_ledgers(
    server: Server = DEFAULT_SERVER,
    output: OutputOption = Output.TABLE,
    limit: Limit = None,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    token: Token = None,
) -> None:
    """List the ledgers by id.

    Every page is read, unless --limit says how many to show.
    """

    def work(client: LedgerClient) -> str:
        listing = client.ledgers(limit)
        if output is Output.JSON:
            return as_json(
                pb.ListLedgersResponse(
                    ledgers=listing.items, next_page_token=listing.next_page_token
                )
            )
        say_if_more(listing, "ledgers")
        rows = [
            [ledger.id, ledger.name, ledger.created_at.ToJsonString(), pairs(ledger.metadata)]
            for ledger in listing.items
        ]
        return columns(["id", "name", "created at", "metadata"], rows)

    ask(connect_ledger(server, timeout, token=token), work)


_BALANCES = ("posted dr", "posted cr", "pending dr", "pending cr", "available")


def _balance_cells(balance: pb.Balance, asset: str) -> list[str]:
    return [
        amount(value, asset)
        for value in (
            balance.posted_debits,
            balance.posted_credits,
            balance.pending_debits,
            balance.pending_credits,
            balance.available,
        )
    ]


@accounts.command("list", cls=Command, epilog=_AMOUNTS)
def list_accounts(  # noqa: PLR0913, PLR0917 - typer: one parameter per command-line option
    ledger: LedgerArgument,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata",
            metavar="KEY=VALUE",
            help="only accounts with this metadata (repeat: all of them)",
        ),
    ] = None,
    server: Server = DEFAULT_SERVER,
    output: OutputOption = Output.TABLE,
    limit: Limit = None,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    token: Token = None,
) -> None:
    """List a ledger's accounts by id, with their balances.

    Every page is read, unless --limit says how many to show.
    """

    def work(client: LedgerClient) -> str:
        listing = client.accounts(ledger, metadata or [], limit)
        if output is Output.JSON:
            return as_json(
                pb.ListAccountsResponse(
                    accounts=listing.items, next_page_token=listing.next_page_token
                )
            )
        say_if_more(listing, "accounts")
        rows = [
            [
                account.id,
                account.asset,
                pb.Account.Status.Name(account.status),
                *_balance_cells(account.balance, account.asset),
                pairs(account.metadata),
            ]
            for account in listing.items
        ]
        headers = ["id", "asset", "status", *_BALANCES, "metadata"]
        return columns(headers, rows, right=_BALANCES)

    ask(connect_ledger(server, timeout, token=token), work)


def _instant(text: str | None) -> datetime | None:
    """``--as-of`` as an instant; a mistake is a ClientError naming the option."""
    if text is None:
        return None
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        line = (
            f"error: --as-of: {text!r} is not an ISO-8601 instant with a time zone "
            "(e.g. 2030-01-02T03:04:05Z)"
        )
        raise ClientError(line, EXIT_ERROR)
    return instant


def balance(  # noqa: PLR0913, PLR0917 - typer: one parameter per command-line option
    ledger: LedgerArgument,
    account: Annotated[str, typer.Argument(metavar="ACCOUNT", help="the account's id")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="INSTANT",
            help="the balances as they were then (ISO-8601 with a time zone, e.g. "
            "2030-01-02T03:04:05Z)",
        ),
    ] = None,
    server: Server = DEFAULT_SERVER,
    output: OutputOption = Output.TABLE,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    token: Token = None,
) -> None:
    """An account's balances, now or --as-of an instant."""

    def work(client: LedgerClient) -> str:
        found = client.balance(ledger, account, _instant(as_of))
        if output is Output.JSON:
            return as_json(found)
        when = [("as of", found.as_of.ToJsonString())] if found.HasField("as_of") else []
        cells = _balance_cells(found.balance, found.asset)
        return fields(
            [
                ("ledger", found.ledger),
                ("account", found.account),
                ("asset", found.asset),
                *when,
                *zip(_BALANCES, cells, strict=True),
            ]
        )

    ask(connect_ledger(server, timeout, token=token), work)


@transfers.command("get", cls=Command, epilog=_AMOUNTS)
def get_transfer(  # noqa: PLR0913, PLR0917 - typer: one parameter per command-line option
    ledger: LedgerArgument,
    transfer: Annotated[str, typer.Argument(metavar="ID", help="the transfer's id")],
    server: Server = DEFAULT_SERVER,
    output: OutputOption = Output.TABLE,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    token: Token = None,
) -> None:
    """A transfer: its kind, status, place in the chain, and legs."""

    def work(client: LedgerClient) -> str:
        found = client.transfer(ledger, transfer)
        if output is Output.JSON:
            return as_json(found)
        return _transfer_text(found)

    ask(connect_ledger(server, timeout, token=token), work)


def _transfer_text(transfer: pb.Transfer) -> str:
    optional: list[tuple[str, str]] = []
    if transfer.HasField("expires_at"):
        optional.append(("expires at", transfer.expires_at.ToJsonString()))
    if transfer.target_id:
        optional.append(("target", transfer.target_id))
    head = fields(
        [
            ("id", transfer.id),
            ("ledger", transfer.ledger),
            ("kind", pb.Transfer.Kind.Name(transfer.kind)),
            ("status", pb.Transfer.Status.Name(transfer.status)),
            ("sequence", str(transfer.sequence)),
            ("created at", transfer.created_at.ToJsonString()),
            *optional,
            ("idempotency key", transfer.idempotency_key),
            ("metadata", pairs(transfer.metadata)),
            ("hash", transfer.hash),
        ]
    )
    legs = columns(
        ["leg", "debit", "credit", "amount", "asset"],
        [
            [
                str(index),
                leg.debit_account,
                leg.credit_account,
                amount(leg.amount, leg.asset),
                leg.asset,
            ]
            for index, leg in enumerate(transfer.legs)
        ],
        right=("leg", "amount"),
    )
    return f"{head}\n\n{legs}"


def add_ledger_client_commands(cli: typer.Typer) -> None:
    """Add the ledger's client commands to ``cli``."""
    cli.add_typer(ledgers)
    cli.command("balance", cls=Command, epilog=_AMOUNTS)(balance)
    cli.add_typer(accounts)
    cli.add_typer(transfers)
