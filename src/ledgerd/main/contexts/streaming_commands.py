"""The streaming context's client command: ``ledgerd events watch LEDGER``.

It opens WatchLedger on a running ``ledgerd serve`` and prints each event as one line of JSON
(the API's JSON form, the payload with its ``@type``), as it comes: a tail -f of a ledger, for
a terminal or a pipe (``| jq``).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ledgerd.gateway.transcoding import render
from ledgerd.main.api_client import DEFAULT_SERVER, ClientError, connect
from ledgerd.main.client_commands import Server, Token
from ledgerd.main.command_style import PLAIN_HELP, Command
from ledgerd.v1 import streaming_pb2 as pb
from ledgerd.v1 import streaming_pb2_grpc

events = typer.Typer(name="events", help="A ledger's events, live.", **PLAIN_HELP)

# Unused by a stream (it has no deadline), but connect() takes one for unary calls.
_UNARY_TIMEOUT_S = 10.0


@events.command("watch", cls=Command)
def watch(  # noqa: PLR0913, PLR0917 - typer: one parameter per command-line option
    ledger: Annotated[str, typer.Argument(metavar="LEDGER", help="the ledger's id")],
    after: Annotated[
        int | None,
        typer.Option(
            "--after",
            min=0,
            metavar="SEQUENCE",
            help="start after this sequence (0: from the ledger's first event; default: from now)",
        ),
    ] = None,
    account: Annotated[
        list[str] | None,
        typer.Option("--account", metavar="ID", help="only events about this account (repeat)"),
    ] = None,
    event_type: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            metavar="TYPE",
            help="only events of this type, e.g. ledgerd.v1.TransferPosted",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, metavar="N", help="stop after N events (default: never)"),
    ] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Print a ledger's events as they are committed, one JSON line each, until Ctrl-C.

    Each line has the event's sequence: to resume where a watch stopped, pass the last one
    seen as --after.
    """
    request = pb.WatchLedgerRequest(ledger=ledger, accounts=account or [], types=event_type or [])
    if after is not None:
        request.after = after
    printed = 0
    try:
        with connect(server, _UNARY_TIMEOUT_S, token=token) as api:
            stub = streaming_pb2_grpc.StreamServiceStub(api.channel)
            for event in api.stream(stub.WatchLedger, request):
                typer.echo(json.dumps(render(event), ensure_ascii=False, separators=(",", ":")))
                printed += 1
                if limit is not None and printed >= limit:
                    return
    except ClientError as error:
        typer.echo(error.line, err=True)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def add_streaming_commands(cli: typer.Typer) -> None:
    cli.add_typer(events)
