"""The ``ledgerd`` command line: the program's commands, then each enabled context's.

The program's own commands (the schema, the servers, the outbox, the load generator) are here;
a context's come from its description (``BoundedContext.commands``). Each command that works
on the database runs through ``ledgerd.main.command_runner``.

What only some commands need (the servers, the brokers' clients, Alembic, the load generator)
is imported when such a command runs, so that ``ledgerd --help`` and ``--version`` answer
without loading it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import typer
from dishka import AsyncContainer
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.errors import LedgerdError
from ledgerd.ledger.application.queries import LedgerQueries
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.entrypoints.cli.demo import Demo, DemoHandlers
from ledgerd.loadgen.config import (
    BenchConfig,
    BenchConfigError,
    RestClient,
    Workload,
    parse_duration,
    parse_target,
)
from ledgerd.main.bounded_context import BoundedContext
from ledgerd.main.certs_commands import certs
from ledgerd.main.command_runner import EXIT_ERROR, EXIT_PROBLEMS, ensure_schema, run
from ledgerd.main.command_style import PLAIN_HELP, Command
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.demo_access import demo_access_lines
from ledgerd.main.downgrade_guard import count_holdings
from ledgerd.main.relay_report import relay_lines
from ledgerd.main.settings import Settings
from ledgerd.platform.file_limit import raise_file_limit
from ledgerd.platform.gc_tuning import GcPauses, tune_after_start
from ledgerd.platform.listening import warn_if_not_loopback
from ledgerd.platform.outbox.store import OutboxStore

app = typer.Typer(
    name="ledgerd",
    help="ledgerd: an async double-entry ledger. Configure with LEDGERD_* environment variables.",
    **PLAIN_HELP,
)
command = functools.partial(app.command, cls=Command)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"ledgerd {package_version('ledgerd')}")
        raise typer.Exit


@app.callback()
def _main_options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """ledgerd: an async double-entry ledger. Configure with LEDGERD_* environment variables."""


log = logging.getLogger(__name__)

AUTH_REQUIRED = "authentication required: every call needs an access token"
AUTH_OFF = (
    "authentication off (LEDGERD_AUTH=off): every caller may use every ledger; "
    "for a server only its own tests reach (docs/security.md)"
)


@command()
def migrate(
    revision: Annotated[
        str, typer.Argument(metavar="REVISION", help="target revision (heads: every branch's)")
    ] = "heads",
    downgrade: Annotated[
        bool, typer.Option("--downgrade", help="migrate down to REVISION (e.g. base)")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="downgrade without asking (it drops tables)")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="downgrade even though the journal holds transfers")
    ] = False,
) -> None:
    """Upgrade (or downgrade) the database schema.

    A downgrade drops tables and every row in them: it says what will be lost, asks (or needs
    --yes), and is refused while the journal holds transfers unless --force is given too.
    """

    async def work(container: AsyncContainer, settings: Settings) -> int:
        # Alembic and every table module load only for the command that migrates.
        from ledgerd.main.migrations import MIGRATIONS  # noqa: PLC0415
        from ledgerd.platform.db.migrations import current_revisions  # noqa: PLC0415

        engine = await container.get(AsyncEngine)
        if downgrade:
            if not await _downgrade_agreed(engine, settings, revision, yes=yes, force=force):
                return EXIT_ERROR
            await MIGRATIONS.downgrade(engine, revision)
        else:
            await MIGRATIONS.upgrade(engine, revision)
        held = await current_revisions(engine)
        typer.echo(f"database at revision {', '.join(sorted(held)) or 'None'}")
        return 0

    run(work, creates_database=True, owns_schema=True)


async def _downgrade_agreed(
    engine: AsyncEngine, settings: Settings, revision: str, *, yes: bool, force: bool
) -> bool:
    """Whether to go ahead: never silently, never over a journal without --force."""
    from ledgerd.main import database_checks  # noqa: PLC0415 - loads Alembic

    holdings = await count_holdings(engine)
    database = database_checks.describe(settings.database_url)
    typer.echo(
        f"migrating {database} down to {revision} drops its tables and their rows: "
        f"{holdings.summary()}",
        err=True,
    )
    if not holdings.journal_empty and not force:
        typer.echo(
            f"error: refused: the journal holds {holdings.transfers} transfers; "
            "back the database up and add --force to drop them",
            err=True,
        )
        return False
    if yes:
        return True
    if sys.stdin.isatty():
        return typer.confirm("go ahead?", default=False, err=True)
    typer.echo("error: refused: add --yes to go ahead", err=True)
    return False


@command()
def outbox() -> None:
    """The relays running, how far publishing is behind per ledger, the dead-lettered events."""

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        store = await container.get(OutboxStore)
        for line in relay_lines(await store.relays(), datetime.now(UTC)):
            typer.echo(line)
        lags = await store.lag()
        for lag in lags:
            oldest = (
                ""
                if lag.oldest_unpublished is None
                else (f", oldest waiting since {lag.oldest_unpublished.isoformat()}")
            )
            error = "" if lag.last_error is None else f", last error: {lag.last_error}"
            typer.echo(
                f"{lag.stream}: {lag.unpublished} unpublished of {lag.last_sequence}{oldest}{error}"
            )
        dead = await store.dead_letters()
        for letter in dead:
            typer.echo(
                f"dead letter: {letter.stream} #{letter.sequence} ({letter.id}) at "
                f"{letter.dead_at.isoformat()}: {letter.reason}"
            )
        typer.echo(
            f"{len(lags)} ledgers, {sum(lag.unpublished for lag in lags)} events unpublished, "
            f"{len(dead)} dead letters"
        )
        return 0

    run(work)


@command()
def republish(
    ledger: Annotated[
        str, typer.Argument(metavar="LEDGER", help="the ledger whose events to publish again")
    ],
    first: Annotated[
        int, typer.Option("--from", min=1, help="the first event (sequence) to publish again")
    ] = 1,
) -> None:
    """Publish a ledger's events again from --from (a broker that joined late, a lost consumer).

    The relays send them again, in order, with their ids: consumers deduplicate. Events
    already waiting to be published are not affected.
    """

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        # An unknown ledger is the same error as `verify` gives; a known one may have no events.
        await (await container.get(LedgerQueries)).get_ledger(ledger)
        store = await container.get(OutboxStore)
        try:
            again = await store.rewind(ledger, after=first - 1)
        except LookupError:
            typer.echo(f"ledger {ledger} has no events", err=True)
            return EXIT_ERROR
        if again == 0:
            typer.echo(f"{ledger}: event {first} and later are not published yet; nothing to do")
        else:
            typer.echo(
                f"{ledger}: {again} events from #{first} will be published again by the "
                "running relays (`ledgerd outbox` shows them)"
            )
        return 0

    run(work)


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, so the process can wind down instead of dying."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


DEMO_LEDGER = "demo"
NO_RELAY_IN_SERVE = (
    "no outbox relay in this process (LEDGERD_RELAY_IN_SERVE): events wait in the outbox "
    "until `ledgerd worker` publishes them"
)


async def _seed_demo(container: AsyncContainer) -> None:
    """Create the demo ledger once, so a fresh `make run` has something to look at."""
    queries = await container.get(LedgerQueries)
    try:
        await queries.get_ledger(DEMO_LEDGER)
    except LedgerdError as error:
        if error.code is not LedgerErrorCode.LEDGER_NOT_FOUND:
            raise
        report = await Demo(await container.get(DemoHandlers), DEMO_LEDGER, lambda _: None).run()
        typer.echo(f"demo  ledger '{DEMO_LEDGER}' created: {report.transfers} transfers")


async def _banner(
    container: AsyncContainer,
    settings: Settings,
    grpc: tuple[int, Sequence[str]],
    http_port: int,
    *,
    with_demo: bool,
) -> list[str]:
    """What ``serve`` prints once it listens: where, and with ``--demo`` how to call it."""
    grpc_host, (grpc_port, services) = settings.grpc_address.rpartition(":")[0], grpc
    scheme = "https" if settings.tls else "http"
    http_base = f"{scheme}://{settings.http_address.rpartition(':')[0]}:{http_port}"
    lines = [
        f"gRPC  {grpc_host}:{grpc_port}  ({', '.join(services)}, health, reflection)",
        f"REST  {http_base}/v1/ledgers",
        f"docs  {http_base}/docs   (OpenAPI: {http_base}/openapi.yaml)",
    ]
    if with_demo and settings.auth == "required":
        lines += await demo_access_lines(container, DEMO_LEDGER, http_base)
    return lines


@command()
def serve(
    with_demo: Annotated[
        bool, typer.Option("--demo", help=f"first create the '{DEMO_LEDGER}' ledger if missing")
    ] = False,
) -> None:
    """Run the API (gRPC and the REST gateway) and the expiry sweep until SIGTERM or Ctrl-C."""

    async def work(container: AsyncContainer, settings: Settings) -> int:
        # The servers and the background workers (uvicorn, the gateway, the brokers' clients):
        # see the module's docstring.
        from ledgerd.main import (  # noqa: PLC0415
            background,
            grpc_server,
            health,
            http_app,
            http_server,
            relaying,
            tls,
        )

        # Certificate files are checked first: a problem is one line naming the setting.
        server_tls = tls.server_tls(settings)
        forwarding = tls.forwarding(settings)
        raise_file_limit()  # every connection holds a file
        warn_if_not_loopback("LEDGERD_GRPC_ADDRESS", settings.grpc_address)
        warn_if_not_loopback("LEDGERD_HTTP_ADDRESS", settings.http_address)
        await ensure_schema(container, settings)
        if with_demo:
            await _seed_demo(container)
        stop = _stop_on_signals()
        server = await grpc_server.start_grpc_server(
            container,
            settings.grpc_address,
            reuse_port=settings.grpc_reuse_port,
            tls=server_tls,
        )
        app, channel = await http_app.served_http_app(
            container,
            settings.gateway_forward_to,
            None if forwarding is None else forwarding.channel,
        )
        try:
            http = await http_server.start_http_server(
                app,
                settings.http_address,
                settings.shutdown_grace_seconds,
                http_server.connection_limits(settings),
                None if server_tls is None else server_tls.rest,
                heartbeat_s=settings.stream_heartbeat_seconds,
            )
        except BaseException:
            # It has listened for a moment only: nothing in flight is worth waiting for.
            await server.stop(0)
            if channel is not None:
                await channel.close()
            raise
        # Start-up is over: what is alive now lives as long as the process.
        tune_after_start(freeze=settings.gc_freeze, gen0_threshold=settings.gc_gen0_threshold)
        pauses = GcPauses()
        pauses.start()
        for line in await _banner(
            container, settings, (server.port, server.services), http.port, with_demo=with_demo
        ):
            typer.echo(line)
        health_watch = asyncio.create_task(
            health.watch_database_health(
                await container.get(AsyncEngine),
                server.health,
                ("", *server.services),
                interval_s=settings.health_interval_seconds,
                stop=stop,
            )
        )
        # The background workers (the relay, the contexts' sweeps) start now and drain after
        # the servers: the relay, started first, stops last, so what the final calls committed
        # goes out.
        async with (
            tls.certificates_reloaded(tls.reloading(server_tls, forwarding), settings),
            background.supervised(
                background.workers_for("serve", settings), container, settings, "serve", stop
            ) as supervision,
        ):
            if settings.auth == "required":
                log.info(AUTH_REQUIRED)
            else:
                log.warning(AUTH_OFF)
            if relaying.relay_in_serve(settings):
                log.info("relay outbox events to %s", settings.events_publisher)
            else:
                log.info(NO_RELAY_IN_SERVE)
            if left := background.left_to_worker(settings):
                log.info("left to `ledgerd worker` (not run by this process): %s", ", ".join(left))
            await stop.wait()
            log.info("stopping: ending event streams, finishing calls in flight")
            await _before_drain(container)
            await http.stop()
            await server.stop(settings.shutdown_grace_seconds)
            if channel is not None:
                await channel.close()
            await health_watch
        pauses.stop()
        log.debug("%s", pauses.summary())  # for bench/gc_tuning.py and the curious
        log.info("ledgerd stopped")
        return 0 if supervision.ok else EXIT_PROBLEMS

    run(work, creates_database=True)


async def _before_drain(container: AsyncContainer) -> None:
    """What the contexts end before the servers drain (open event streams)."""
    for context in ENABLED_CONTEXTS:
        if context.before_drain is not None:
            await context.before_drain(container)


@command()
def worker(
    interval: Annotated[
        float | None, typer.Option(help="seconds between expiry sweeps (default from settings)")
    ] = None,
) -> None:
    """Until SIGTERM or Ctrl-C: relay outbox events, expire overdue holds."""

    async def work(container: AsyncContainer, settings: Settings) -> int:
        # The background workers: see the module's docstring.
        from ledgerd.main import background, relaying  # noqa: PLC0415

        raise_file_limit()  # every broker and database connection holds a file
        await ensure_schema(container, settings)
        stop = _stop_on_signals()
        if interval is not None:
            settings = settings.model_copy(update={"expiry_interval_seconds": interval})
        every = settings.expiry_interval_seconds
        relays = relaying.relays_in_worker(settings)
        async with background.supervised(
            background.workers_for("worker", settings), container, settings, "worker", stop
        ) as supervision:
            relay = (
                f"outbox relay to {settings.events_publisher}"
                if relays
                else ("no outbox relay (LEDGERD_EVENTS_PUBLISHER=hub is in-process)")
            )
            typer.echo(
                f"worker running: {relay}, expiry sweep every {every} s; "
                "stop with SIGTERM or Ctrl-C"
            )
            await stop.wait()
        log.info("worker stopped")
        return 0 if supervision.ok else EXIT_PROBLEMS

    run(work, creates_database=True)


@command()
def bench(  # noqa: PLR0913, PLR0917 - typer: one parameter per command-line option
    target: Annotated[
        str, typer.Option(help="the server: grpc://HOST:PORT or http://HOST:PORT")
    ] = "grpc://127.0.0.1:50051",
    workload: Annotated[
        Workload, typer.Option(help="uniform; hot: one account in every transfer; zipf")
    ] = Workload.UNIFORM,
    accounts: Annotated[int, typer.Option(help="accounts to spread the transfers over")] = 10_000,
    clients: Annotated[int, typer.Option(help="concurrent clients, one connection each")] = 64,
    batch: Annotated[
        int, typer.Option(help="transfers per request; over 1 posts them with transfers:batch")
    ] = 1,
    duration: Annotated[
        str | None, typer.Option(help="how long to run, e.g. 20s (default 20s without --transfers)")
    ] = None,
    transfers: Annotated[
        int | None, typer.Option(help="post this many transfers instead of running for a time")
    ] = None,
    processes: Annotated[
        int, typer.Option(help="client processes (one Python process has its own ceiling)")
    ] = 1,
    ledger: Annotated[str, typer.Option(help="the ledger to create (if missing) and load")] = (
        "bench"
    ),
    output: Annotated[Path | None, typer.Option(help="write the JSON result here")] = None,
    trivial: Annotated[
        bool, typer.Option("--trivial", help="call the health check instead: the client's ceiling")
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(help="the server's database: run `ledgerd verify` on it after the run"),
    ] = None,
    verify: Annotated[
        bool, typer.Option(help="with --database-url: run `ledgerd verify` after the run")
    ] = True,
    compare_pgbench: Annotated[
        bool,
        typer.Option(
            "--compare-pgbench",
            help="first run pgbench's naive ledger on --database-url's server, report the ratio",
        ),
    ] = False,
    pgbench_duration: Annotated[
        str | None, typer.Option(help="how long pgbench runs (default: as long as the run)")
    ] = None,
    rest_client: Annotated[
        RestClient, typer.Option(help="what makes the timed REST calls (lean: cheaper per call)")
    ] = RestClient.LEAN,
    timeout: Annotated[float, typer.Option(help="seconds a request may take")] = 30.0,
    seed: Annotated[
        int | None, typer.Option(help="vary the load (unset: the same accounts every run)")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="LEDGERD_TOKEN", help="a ready access token for every call"),
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option(
            envvar="LEDGERD_CLIENT_ID",
            help="get tokens by the client-credentials grant as this client (and renew them)",
        ),
    ] = None,
    client_secret: Annotated[
        str | None, typer.Option(envvar="LEDGERD_CLIENT_SECRET", help="that client's secret")
    ] = None,
    token_url: Annotated[
        str | None,
        typer.Option(
            help="the server's POST /oauth2/token (default: on an http:// target's server; "
            "needed with a grpc:// target)"
        ),
    ] = None,
) -> None:
    """Load a running server over gRPC or REST, report the rate and latency, check invariants."""
    # bench's alone: credentials brings httpx, whose import (~0.2 s, its own command line's rich
    # and pygments included) no other command should wait for.
    from ledgerd.loadgen.bench import BenchOptions, bench  # noqa: PLC0415
    from ledgerd.loadgen.credentials import bench_auth  # noqa: PLC0415

    try:
        parsed_target = parse_target(target)
        config = BenchConfig(
            target=parsed_target,
            workload=workload,
            accounts=accounts,
            clients=clients,
            batch=batch,
            duration_s=None
            if transfers is not None and duration is None
            else parse_duration(duration or "20s"),
            transfers=transfers,
            processes=processes,
            ledger=ledger,
            trivial=trivial,
            database_url=database_url,
            verify=verify,
            rest_client=rest_client,
            request_timeout_s=timeout,
            seed=seed,
            auth=bench_auth(parsed_target, token, client_id, client_secret, token_url),
        )
        options = BenchOptions(
            output=output,
            compare_pgbench=compare_pgbench,
            pgbench_duration_s=None
            if pgbench_duration is None
            else parse_duration(pgbench_duration),
        )
    except BenchConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_ERROR) from error
    status, _report = asyncio.run(bench(config, options))
    raise typer.Exit(status)


def register_context_commands(
    cli: typer.Typer, contexts: Sequence[BoundedContext] = ENABLED_CONTEXTS
) -> None:
    """Add the commands each context declares (``BoundedContext.commands``), in list order."""
    for context in contexts:
        if context.commands is not None:
            context.commands(cli)


app.add_typer(certs)
# After the program's own, so that `ledgerd -h` lists those first.
register_context_commands(app)
