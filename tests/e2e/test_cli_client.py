"""The client commands as a user runs them, against a real ``ledgerd serve`` on a free port.

`ledgers list`, `accounts list`, `balance` and `transfers get`, in both outputs, on books the
test makes over gRPC; then what a user sees when something is missing (exit 2) or no server
answers (exit 3): one line on stderr, never a traceback.

What the commands print is read in process (typer's runner on the real command line, calling
the real server over gRPC): the same text, without an interpreter started for each of ~20
commands. The failures are the console script's, as a process: its exit code, and its stderr
holding one line where an uncaught error would print a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from ledgerd.main.cli import app
from ledgerd.main.contexts.ledger_api_client import connect_ledger
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc
from tests.e2e.grpc.test_serve import LEDGERD, START_WAIT_S, STOP_WAIT_S, ledgerd_environment
from tests.e2e.test_cli import COMMAND_TIMEOUT_S, EXIT_ERROR
from tests.network import free_port

EXIT_UNREACHABLE = 3
USD = "USD/2"
CALL_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Books:
    """A served ledger ``shop`` (and an empty ``books``) and the transfers made in it."""

    server: str
    top_up: str  # bank -> alice 25.00
    payment: str  # alice -> bob 10.00 and alice -> bank 0.34, in one transfer
    hold: str  # bank -> bob 5.00, pending


def _seed(stub: ledger_pb2_grpc.LedgerServiceStub) -> tuple[str, str, str]:
    def post(key: str, *legs: tuple[str, str, int], hold: bool = False) -> str:
        transfer = pb.TransferInput(
            idempotency_key=key,
            legs=[pb.Leg(debit_account=d, credit_account=c, amount=a) for d, c, a in legs],
            metadata={"note": key},
        )
        if hold:
            transfer.pending.CopyFrom(pb.PendingOptions(timeout_seconds=3600))
        request = pb.PostTransferRequest(ledger="shop", transfer=transfer)
        return stub.PostTransfer(request, timeout=CALL_TIMEOUT_S).id

    stub.CreateLedger(
        pb.CreateLedgerRequest(id="shop", name="Shop", metadata={"region": "eu"}),
        timeout=CALL_TIMEOUT_S,
    )
    stub.CreateLedger(pb.CreateLedgerRequest(id="books", name="Books"), timeout=CALL_TIMEOUT_S)
    for account, metadata in (
        ("alice", {"kind": "wallet"}),
        ("bank", {}),
        ("bob", {"kind": "wallet"}),
    ):
        stub.CreateAccount(
            pb.CreateAccountRequest(ledger="shop", id=account, asset=USD, metadata=metadata),
            timeout=CALL_TIMEOUT_S,
        )
    return (
        post("top-up", ("bank", "alice", 2500)),
        post("payment", ("alice", "bob", 1000), ("alice", "bank", 34)),
        post("hold", ("bank", "bob", 500), hold=True),
    )


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Books]:
    """``ledgerd serve`` on an embedded database, with the books above, for the module."""
    directory = tmp_path_factory.mktemp("cli-client")
    server = f"127.0.0.1:{free_port()}"
    env = ledgerd_environment(
        f"sqlite+aiosqlite:///{directory}/ledgerd.db",
        grpc_address=server,
        http_address="127.0.0.1:0",
    )
    log_path = directory / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - our own console script
            [str(LEDGERD), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        with grpc.insecure_channel(server) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=START_WAIT_S)
            except grpc.FutureTimeoutError:
                pytest.fail(f"ledgerd serve did not start:\n{log_path.read_text()}")
            top_up, payment, hold = _seed(ledger_pb2_grpc.LedgerServiceStub(channel))
        yield Books(server, top_up, payment, hold)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    out: str
    err: str


def ledgerd(server: str, *args: str) -> Run:
    """``ledgerd ARGS`` with ``LEDGERD_SERVER`` set to ``server``."""
    completed = subprocess.run(  # noqa: S603 - our own console script with fixed arguments
        [str(LEDGERD), *args],
        env={**os.environ, "LEDGERD_SERVER": server},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


def printed(server: str, *args: str) -> Run:
    """What ``ledgerd ARGS`` prints, run in process with ``LEDGERD_SERVER`` set to ``server``."""
    result = CliRunner().invoke(
        app, list(args), env={"LEDGERD_SERVER": server}, prog_name="ledgerd"
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def ok(run: Run) -> str:
    assert (run.code, run.err) == (0, ""), run
    return run.out


def rows(table: str) -> list[list[str]]:
    """A table's lines, split on whitespace (no cell here holds a space)."""
    return [line.split() for line in table.splitlines()]


def fields(text: str) -> dict[str, str]:
    """``name:  value`` lines as a dict (up to the first blank line)."""
    head = text.split("\n\n", 1)[0]
    return {
        name: value.strip()
        for name, _, value in (line.partition(":") for line in head.splitlines())
    }


# --- ledgers list -----------------------------------------------------------------------------


def test_ledgers_list_as_a_table_and_as_json(books: Books) -> None:
    table = rows(ok(printed(books.server, "ledgers", "list")))
    assert table[0] == ["id", "name", "created", "at", "metadata"]
    assert [row[0] for row in table[1:]] == ["books", "shop"]
    assert table[2][1] == "Shop"
    assert table[2][-1] == "region=eu"

    answer = json.loads(ok(printed(books.server, "ledgers", "list", "--output", "json")))
    assert answer["next_page_token"] == ""
    assert [ledger["id"] for ledger in answer["ledgers"]] == ["books", "shop"]
    shop = answer["ledgers"][1]
    assert set(shop) == {"id", "name", "metadata", "created_at"}
    assert (shop["name"], shop["metadata"]) == ("Shop", {"region": "eu"})


def test_a_limit_shows_the_first_and_says_more_follow(books: Books) -> None:
    limited = printed(books.server, "ledgers", "list", "--limit", "1")
    assert limited.code == 0, limited
    assert [row[0] for row in rows(limited.out)[1:]] == ["books"]
    assert limited.err.strip() == "more ledgers follow: raise --limit to see them"

    answer = json.loads(ok(printed(books.server, "ledgers", "list", "--limit", "1", "-o", "json")))
    assert [ledger["id"] for ledger in answer["ledgers"]] == ["books"]
    assert answer["next_page_token"]  # the API's token for what follows


def test_the_client_follows_every_page(books: Books) -> None:
    with connect_ledger(books.server, CALL_TIMEOUT_S, page_size=1) as client:
        every = client.accounts("shop", [], limit=None)
        first_two = client.accounts("shop", [], limit=2)
        ledgers = client.ledgers(limit=None)
    assert [account.id for account in every.items] == ["alice", "bank", "bob"]
    assert every.next_page_token == ""
    assert [account.id for account in first_two.items] == ["alice", "bank"]
    assert first_two.next_page_token
    assert [ledger.id for ledger in ledgers.items] == ["books", "shop"]


# --- accounts list ----------------------------------------------------------------------------


def test_accounts_list_shows_balances_in_the_assets_units(books: Books) -> None:
    table = rows(ok(printed(books.server, "accounts", "list", "shop")))
    assert table[0] == [
        "id", "asset", "status", "posted", "dr", "posted", "cr", "pending", "dr", "pending",
        "cr", "available", "metadata",
    ]  # fmt: skip
    assert table[1:] == [
        ["alice", USD, "OPEN", "10.34", "25.00", "0.00", "0.00", "14.66", "kind=wallet"],
        ["bank", USD, "OPEN", "25.00", "0.34", "5.00", "0.00", "-29.66"],  # credit-normal
        ["bob", USD, "OPEN", "0.00", "10.00", "0.00", "5.00", "10.00", "kind=wallet"],
    ]


def test_accounts_list_as_json_is_the_apis_minor_units(books: Books) -> None:
    answer = json.loads(ok(printed(books.server, "accounts", "list", "shop", "-o", "json")))
    assert [account["id"] for account in answer["accounts"]] == ["alice", "bank", "bob"]
    alice = answer["accounts"][0]
    assert alice["balance"] == {
        "posted_debits": "1034",
        "posted_credits": "2500",
        "pending_debits": "0",
        "pending_credits": "0",
        "available": "1466",
    }
    assert (alice["ledger"], alice["status"], alice["metadata"]) == (
        "shop",
        "OPEN",
        {"kind": "wallet"},
    )


def test_accounts_list_filters_by_metadata(books: Books) -> None:
    wallets = ok(printed(books.server, "accounts", "list", "shop", "--metadata", "kind=wallet"))
    assert [row[0] for row in rows(wallets)[1:]] == ["alice", "bob"]
    both = ("--metadata", "kind=wallet", "--metadata", "kind2=x")
    none = ok(printed(books.server, "accounts", "list", "shop", *both, "-o", "json"))
    assert json.loads(none) == {"accounts": [], "next_page_token": ""}


# --- balance ----------------------------------------------------------------------------------


def test_balance_now_as_a_table_and_as_json(books: Books) -> None:
    shown = fields(ok(printed(books.server, "balance", "shop", "alice")))
    assert shown == {
        "ledger": "shop",
        "account": "alice",
        "asset": USD,
        "posted dr": "10.34",
        "posted cr": "25.00",
        "pending dr": "0.00",
        "pending cr": "0.00",
        "available": "14.66",
    }
    answer = json.loads(ok(printed(books.server, "balance", "shop", "bob", "--output", "json")))
    assert answer == {
        "ledger": "shop",
        "account": "bob",
        "asset": USD,
        "balance": {
            "posted_debits": "0",
            "posted_credits": "1000",
            "pending_debits": "0",
            "pending_credits": "500",
            "available": "1000",
        },
    }


def test_balance_as_of_an_instant_before_any_transfer(books: Books) -> None:
    before = "2000-01-01T02:00:00+02:00"
    shown = fields(ok(printed(books.server, "balance", "shop", "alice", "--as-of", before)))
    assert shown["as of"] == "2000-01-01T00:00:00Z"
    assert shown["available"] == shown["posted cr"] == "0.00"
    answer = json.loads(
        ok(printed(books.server, "balance", "shop", "alice", "--as-of", before, "-o", "json"))
    )
    assert answer["as_of"] == "2000-01-01T00:00:00Z"
    assert answer["balance"]["posted_credits"] == "0"


@pytest.mark.parametrize("instant", ["yesterday", "2030-01-02T03:04:05"])
def test_an_as_of_without_a_time_zone_is_refused(books: Books, instant: str) -> None:
    run = ledgerd(books.server, "balance", "shop", "alice", "--as-of", instant)
    assert (run.code, run.out) == (EXIT_ERROR, ""), run
    assert run.err.startswith("error: --as-of:"), run
    assert len(run.err.splitlines()) == 1, run


# --- transfers get ----------------------------------------------------------------------------


def test_transfers_get_shows_the_legs(books: Books) -> None:
    text = ok(printed(books.server, "transfers", "get", "shop", books.payment))
    shown = fields(text)
    assert (shown["id"], shown["ledger"], shown["kind"], shown["status"]) == (
        books.payment, "shop", "POSTING", "POSTED"
    )  # fmt: skip
    assert (shown["sequence"], shown["idempotency key"], shown["metadata"]) == (
        "2", "payment", "note=payment"
    )  # fmt: skip
    legs = rows(text.split("\n\n", 1)[1])
    assert legs == [
        ["leg", "debit", "credit", "amount", "asset"],
        ["0", "alice", "bob", "10.00", USD],
        ["1", "alice", "bank", "0.34", USD],
    ]


def test_transfers_get_as_json(books: Books) -> None:
    answer = json.loads(
        ok(printed(books.server, "transfers", "get", "shop", books.hold, "-o", "json"))
    )
    assert (answer["id"], answer["kind"], answer["status"]) == (books.hold, "HOLD", "PENDING")
    assert answer["legs"] == [
        {"debit_account": "bank", "credit_account": "bob", "amount": "500", "asset": USD}
    ]
    assert answer["pending"] == {"timeout_seconds": "3600"}
    assert "expires_at" in answer
    assert answer["sequence"] == "3"
    table = fields(ok(printed(books.server, "transfers", "get", "shop", books.hold)))
    assert table["expires at"] == answer["expires_at"]


# --- failures ---------------------------------------------------------------------------------


def assert_one_line(run: Run) -> str:
    assert run.out == "", run
    assert "Traceback" not in run.err, run
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run
    return lines[0]


@pytest.mark.parametrize("output", ["table", "json"])
@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("accounts", "list", "nope"), "LEDGER_NOT_FOUND"),
        (("balance", "nope", "alice"), "LEDGER_NOT_FOUND"),
        (("balance", "shop", "nope"), "ACCOUNT_NOT_FOUND"),
        (("transfers", "get", "shop", "nope"), "TRANSFER_NOT_FOUND"),
    ],
)
def test_something_missing_is_one_line_with_its_code(
    books: Books, args: tuple[str, ...], code: str, output: str
) -> None:
    run = ledgerd(books.server, *args, "--output", output)
    assert run.code == EXIT_ERROR, run
    assert assert_one_line(run).startswith(f"error {code}: "), run


def test_a_refused_argument_is_one_line_with_the_servers_reason(books: Books) -> None:
    run = ledgerd(books.server, "accounts", "list", "shop", "--metadata", "novalue")
    assert run.code == EXIT_ERROR, run
    assert assert_one_line(run).startswith("error VALIDATION_FAILED: metadata"), run


COMMANDS = [
    ("ledgers", "list"),
    ("accounts", "list", "shop"),
    ("balance", "shop", "alice"),
    ("transfers", "get", "shop", "t1"),
]


def _closed_address() -> str:
    """A loopback address nothing listens on (its port was free a moment ago)."""
    return f"127.0.0.1:{free_port()}"


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_no_server_is_one_line_naming_the_address_and_exit_3(args: tuple[str, ...]) -> None:
    address = _closed_address()
    run = ledgerd(address, *args)
    assert run.code == EXIT_UNREACHABLE, run
    line = assert_one_line(run)
    assert f"cannot reach ledgerd at {address}" in line
    assert "--server" in line
    assert "LEDGERD_SERVER" in line


def test_a_server_that_never_answers_is_exit_3_after_the_timeout() -> None:
    with socket.socket() as silent:  # takes connections (the kernel does), says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        run = ledgerd(address, "ledgers", "list", "--timeout", "1")
    assert run.code == EXIT_UNREACHABLE, run
    assert assert_one_line(run) == (
        f"error: ledgerd at {address} (--server or LEDGERD_SERVER) did not answer within 1 s "
        "(--timeout)"
    )


def test_the_server_option_wins_over_the_variable(books: Books) -> None:
    run = ledgerd(_closed_address(), "ledgers", "list", "--server", books.server)
    assert [row[0] for row in rows(ok(run))[1:]] == ["books", "shop"]


@pytest.mark.parametrize("address", ["nohost", "127.0.0.1:99999"])
def test_a_server_address_that_is_not_host_port_is_exit_2(address: str) -> None:
    run = ledgerd(address, "ledgers", "list")
    assert run.code == EXIT_ERROR, run
    line = assert_one_line(run)
    assert "LEDGERD_SERVER" in line
    assert "is not HOST:PORT" in line


def test_the_commands_need_no_database_settings(books: Books, tmp_path: Path) -> None:
    # A database URL ledgerd would refuse does not matter to a command that only calls the API.
    env = {**os.environ, "LEDGERD_SERVER": books.server, "LEDGERD_DATABASE_URL": "mysql://x"}
    completed = subprocess.run(  # noqa: S603 - our own console script with fixed arguments
        [str(LEDGERD), "balance", "shop", "alice"],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    assert not any(tmp_path.iterdir())  # no embedded database made on the way
