"""``ledgerd bench``: set up, (compare with pgbench,) run the load, check, report.

Exit status: 0 when every invariant held, 1 when one failed, 2 when the run could not be
done (a bad option, the server unreachable, set-up refused).
"""

from __future__ import annotations

import collections
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ledgerd.loadgen import invariants
from ledgerd.loadgen.config import BenchConfig
from ledgerd.loadgen.credentials import TokenKeeper
from ledgerd.loadgen.pgbench import PgbenchError, PgbenchResult, run_pgbench
from ledgerd.loadgen.processes import WorkerError, run_load
from ledgerd.loadgen.provision import Provisioned, provision
from ledgerd.loadgen.report import BenchReport, machine_info, print_summary
from ledgerd.loadgen.runner import make_transport
from ledgerd.loadgen.stats import RunStats
from ledgerd.loadgen.transport import ApiError

EXIT_OK = 0
EXIT_INVARIANT_FAILED = 1
EXIT_ERROR = 2
DEFAULT_PGBENCH_DURATION_S = 10.0
# The acknowledged-ids check lists transfers created since shortly before the run (by this
# machine's clock; a miss is re-checked against the whole ledger, so skew cannot fail it).
_SINCE_MARGIN = timedelta(seconds=5)
_RATE_WINDOW_S = 1.0
# What a server answers a call whose token is missing, refused, or short of a scope or ledger.
AUTH_REFUSALS = frozenset({"UNAUTHENTICATED", "INSUFFICIENT_SCOPE", "HTTP_401", "HTTP_403"})
_AUTH_HINT = (
    "the server refused the access token: with LEDGERD_AUTH=required, give --token, or "
    "--client-id and --client-secret (and --token-url with a grpc:// target), of a client "
    "with the scopes ledger.read, ledger.write, transfers.write, ledgers.admin"
)


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What surrounds the run: where the result goes, and the pgbench comparison."""

    output: Path | None = None
    compare_pgbench: bool = False
    pgbench_duration_s: float | None = None
    """Default: the run's duration, or 10 s for a run bounded by a transfer count."""


RUNNING = "load running"


def new_run_id() -> str:
    """Short, unique, and a valid id fragment: it prefixes every idempotency key of the run."""
    return f"lg{datetime.now(UTC):%m%d%H%M%S}{uuid.uuid4().hex[:6]}"


async def bench(
    config: BenchConfig,
    options: BenchOptions,
    *,
    out: Console | None = None,
    err: Console | None = None,
    run_id: str | None = None,
) -> tuple[int, BenchReport | None]:
    """Run the whole benchmark; the exit status, and the report when there is one."""
    out = out or _stdout()
    err = err or Console(stderr=True)
    run_id = run_id or new_run_id()
    try:
        report = await _bench(config, options, run_id, err)
    except (ApiError, PgbenchError, WorkerError, OSError) as error:
        err.print(f"ledgerd bench: {type(error).__name__}: {error}", markup=False)
        if isinstance(error, ApiError) and error.code in AUTH_REFUSALS:
            err.print(_AUTH_HINT, markup=False)
        return EXIT_ERROR, None
    print_summary(report, out)
    if options.output is not None:
        write_result(report, options.output)
        out.print(f"result written to {options.output}", markup=False)
    return (EXIT_OK if report.ok else EXIT_INVARIANT_FAILED), report


def _stdout() -> Console:
    console = Console(file=sys.stdout)
    # Piped into a file or a log, the summary keeps its lines whole instead of 80 columns.
    return console if console.is_terminal else Console(file=sys.stdout, width=160)


def write_result(report: BenchReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.document(), indent=2) + "\n")


async def _bench(
    config: BenchConfig, options: BenchOptions, run_id: str, err: Console
) -> BenchReport:
    started_at = datetime.now(UTC)
    machine = machine_info()  # before the run: its load average says how quiet the machine was
    keeper = TokenKeeper(config.auth, config.request_timeout_s)
    await keeper.start()  # the set-up and checks' own token (each client process gets its own)
    admin = make_transport(config, keeper.header, admin=True)
    try:
        provisioned: Provisioned | None = None
        if not config.trivial:
            err.print(f"setting up ledger {config.ledger!r}: {config.accounts} accounts")
            provisioned = await provision(admin, config.ledger, config.accounts, config.asset)
        compare = options.compare_pgbench and not config.trivial
        pgbench = await _pgbench(config, options, err) if compare else None
        since = datetime.now(UTC) - _SINCE_MARGIN
        err.print(RUNNING)  # for a script running this one beside another: the load is on
        stats = await _run_with_progress(config, run_id, err)
        checks = authentication_check(config, stats)
        if not config.trivial:
            err.print("checking invariants")
            checks += await invariants.check_invariants(
                admin,
                config.ledger,
                stats.acked_ids,
                since,
                database_url=config.database_url,
                verify=config.verify,
                rng=_rng(config),
            )
    finally:
        await admin.close()
        await keeper.stop()
    return BenchReport(
        config=config,
        run_id=run_id,
        started_at=started_at,
        machine=machine,
        provisioned=provisioned,
        stats=stats,
        checks=checks,
        pgbench=pgbench,
    )


def authentication_check(config: BenchConfig, stats: RunStats) -> list[invariants.Check]:
    """A failed check, not just a count, when the server refused the token during the run."""
    refused = {code: n for code, n in stats.errors.items() if code in AUTH_REFUSALS}
    if refused:
        counts = ", ".join(f"{code} {n:,}" for code, n in sorted(refused.items()))
        detail = f"the server refused the access token during the run ({counts}): {_AUTH_HINT}"
        return [invariants.Check("authentication", ok=False, detail=detail)]
    if config.auth is None:
        return []
    detail = (
        f"every call authenticated ({config.auth.describe()['method']}; "
        f"{stats.token_renewals} token renewal(s) during the run)"
    )
    return [invariants.Check("authentication", ok=True, detail=detail)]


def _rng(config: BenchConfig) -> random.Random:
    return random.Random(config.seed)  # noqa: S311 - picks accounts to sample, not a secret


async def _pgbench(config: BenchConfig, options: BenchOptions, err: Console) -> PgbenchResult:
    if config.database_url is None:
        msg = "--compare-pgbench needs --database-url (pgbench runs on that server)"
        raise PgbenchError(msg)
    duration = options.pgbench_duration_s or config.duration_s or DEFAULT_PGBENCH_DURATION_S
    err.print(
        f"pgbench: naive ledger, {config.batch} per transaction, {config.clients} clients, "
        f"{config.workload}, {duration:.0f} s"
    )
    return await run_pgbench(
        config.database_url,
        workload=config.workload,
        accounts=config.accounts,
        clients=config.clients,
        per_transaction=config.batch,
        duration_s=duration,
        zipf_exponent=config.zipf_exponent,
    )


async def _run_with_progress(config: BenchConfig, run_id: str, err: Console) -> RunStats:
    unit = "calls" if config.trivial else "transfers"
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[done]:>12,} " + unit),
        TextColumn("{task.fields[rate]:>9,.0f}/s"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=False,
    )
    total = config.duration_s if config.transfers is None else float(config.transfers)
    with progress:
        task = progress.add_task(
            f"{config.transport} {config.workload}", total=total, done=0, rate=0.0
        )
        tick = _ProgressTick(progress, task, counting=config.transfers is not None)
        return await run_load(config, run_id, tick)


class _ProgressTick:
    """Turns "N done so far" into the bar's position and a rate over the last second."""

    def __init__(self, progress: Progress, task: TaskID, *, counting: bool) -> None:
        self._progress = progress
        self._task = task
        self._counting = counting
        self._started: float | None = None
        self._window: collections.deque[tuple[float, int]] = collections.deque()

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        if self._started is None:
            self._started = now
        self._window.append((now, done))
        while len(self._window) > 1 and now - self._window[0][0] > _RATE_WINDOW_S:
            self._window.popleft()
        first_time, first_done = self._window[0]
        rate = (done - first_done) / (now - first_time) if now > first_time else 0.0
        completed = done if self._counting else now - self._started
        self._progress.update(self._task, completed=completed, done=done, rate=rate)
