"""What every client command shares: the server's address, the output form, the call and its errors.

A client command asks a running ``ledgerd serve`` over gRPC, through its context's client on
the shared plumbing (``main/api_client.py``). Unlike the other commands it needs no database
settings: only where the server is (``--server``, or ``LEDGERD_SERVER``). It prints a table by
default, or with ``--output json`` the API's JSON form (what REST answers: proto field names,
64-bit integers as strings). The commands themselves belong to their context (the ledger's:
``main/contexts/ledger_client_commands.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Annotated, TypeVar

import typer
from google.protobuf.message import Message

from ledgerd.gateway.transcoding import render
from ledgerd.main.api_client import SERVER_VARIABLE, TOKEN_VARIABLE, ClientError, Listing


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


Server = Annotated[
    str,
    typer.Option(
        "--server",
        envvar=SERVER_VARIABLE,
        metavar="HOST:PORT",
        help="the gRPC address of a running `ledgerd serve`",
    ),
]
# A credential: its value is never shown (no default in --help, the variable's name only).
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar=TOKEN_VARIABLE,
        show_envvar=True,
        show_default=False,
        metavar="TOKEN",
        help="the access token every call carries (`authorization: Bearer TOKEN`), for a "
        "server with LEDGERD_AUTH=required; unset: none",
    ),
]
OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="table, or json: the API's JSON form")
]
Timeout = Annotated[
    float,
    typer.Option("--timeout", min=0.1, metavar="SECONDS", help="seconds to wait for each answer"),
]
Limit = Annotated[
    int | None,
    typer.Option("--limit", min=1, metavar="N", help="show at most this many (default: all)"),
]

_Item = TypeVar("_Item", bound=Message)
_Client = TypeVar("_Client")


def ask(connection: AbstractContextManager[_Client], work: Callable[[_Client], str]) -> None:
    """Print what ``work`` makes of the server's answers, or one line and the exit code.

    ``connection`` gives a context's client (``connect_ledger(server, timeout, token=token)``).
    """
    try:
        with connection as client:
            text = work(client)
    except ClientError as error:
        typer.echo(error.line, err=True)
        raise typer.Exit(error.exit_code) from None
    typer.echo(text)


def as_json(message: Message) -> str:
    """``--output json``: the message as the API's JSON form, indented."""
    return json.dumps(render(message), indent=2, ensure_ascii=False)


def say_if_more(listing: Listing[_Item], what: str) -> None:
    """Say (on stderr, apart from the table) that --limit left some out."""
    if listing.next_page_token:
        typer.echo(f"more {what} follow: raise --limit to see them", err=True)
