"""The container image of deploy/Containerfile, built with buildah and run from its own files.

One build per test session (``make image``'s steps, tools/build_image.py: 36-68 s here, the
Debian root filesystem made anew or not); the image's single layer is unpacked to
build/image/rootfs/ and each command runs in a chroot of it, as the image's user (65532), with
the environment of the image's configuration: the files, the user and the variables a
container runtime would give it. What the runtime adds, the chroot gets from the host: the
network (loopback, where the local PostgreSQL listens) and the two device files ledgerd needs
(/dev/null, and /dev/urandom, without which grpc aborts; Kubernetes and every container
runtime provide both).

Needs root (chroot, device files), buildah and mmdebstrap (.ci/run installs them), and
Debian's package archive (mmdebstrap downloads the build root's packages; kept between runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from tools import build_image

from ledgerd.platform.messaging.sqs import sqs_client
from tests.conftest import service_unavailable
from tests.integration.messaging.sqs_emulator import ENVIRONMENT, REGION, emulated_aws

USER_ID = 65532
# By its full path: the commands run with the image's PATH, which has no chroot.
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
ENTRY_POINT = "/usr/local/bin/ledgerd"
ISSUER = "http://ledgerd.test"
REST_LINE = re.compile(r"^REST\s+(http://127\.0\.0\.1:\d+)/")
# Upper bounds, so that a hung build or server fails the test rather than the run.
BUILD_WAIT_S = 600.0
COMMAND_WAIT_S = 60.0
# Issue 16's targets for the image's one layer. Not met, and out of reach without dropping a
# feature: the native code alone (grpc 17 MB, cryptography 12 MB, the interpreter,
# pydantic-core, libcrypto, ...) is 60.2 MB uncompressed, above the target by itself, and
# 19.3 MB as zstd before any bytecode (docs/deploy.md, "Sizes, measured"). The strict xfail
# turns into a failure the day they are met.
TARGET_ZSTD_BYTES = 20_000_000
TARGET_UNCOMPRESSED_BYTES = 60_000_000
# What the image measures now (31.3 MB zstd, 102.0 MB uncompressed) with a margin: a budget
# that catches a dependency or a file that should not be there.
BUDGET_ZSTD_BYTES = 34_000_000
BUDGET_UNCOMPRESSED_BYTES = 110_000_000
# Programs that would let an intruder do more than ledgerd does: shells, compilers, installers.
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"})
COMPILERS = frozenset({"cc", "gcc", "g++", "c++", "clang", "tcc", "as", "ld", "ld.bfd", "make"})
INSTALLERS = frozenset({"pip", "pip3", "pip3.11", "uv", "apt", "apt-get", "dpkg"})


@dataclass(frozen=True)
class BuiltImage:
    report: build_image.ImageReport
    config: dict[str, Any]  # the OCI image configuration's `config` (User, Env, ...)
    labels: dict[str, str]

    @property
    def rootfs(self) -> Path:
        return self.report.rootfs

    def environment(self, **settings: str) -> dict[str, str]:
        """The image's variables, then ``settings`` as ``LEDGERD_*`` ones."""
        env = dict(item.split("=", 1) for item in self.config["Env"])
        env.update({f"LEDGERD_{name.upper()}": value for name, value in settings.items()})
        return env

    def argv(self, *command: str) -> list[str]:
        """``ledgerd COMMAND`` in a chroot of the image, as the image's user."""
        user = str(self.config["User"])
        return [CHROOT, f"--userspec={user}", str(self.rootfs), ENTRY_POINT, *command]


@pytest.fixture(scope="session")
def image() -> BuiltImage:
    if os.geteuid() != 0:
        service_unavailable("building and running the image needs root (chroot, device files)")
    missing = [tool for tool in ("buildah", "mmdebstrap", CHROOT) if shutil.which(tool) is None]
    if missing:
        service_unavailable(f"no {', '.join(missing)} (.ci/run installs buildah and mmdebstrap)")
    started = time.monotonic()
    report = build_image.build_image()
    assert time.monotonic() - started < BUILD_WAIT_S
    print("\n".join(report.lines()))  # noqa: T201 - the sizes, in the test log (-rA / -s)
    inspected = subprocess.run(  # noqa: S603 - buildah, fixed arguments
        [*build_image.BUILDAH, "inspect", "--type", "image", report.image],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    oci = json.loads(inspected)["OCIv1"]
    _add_runtime_devices(report.rootfs)
    return BuiltImage(report, oci["config"], oci["config"].get("Labels", {}))


def _add_runtime_devices(rootfs: Path) -> None:
    """/dev/null and /dev/urandom, as a container runtime mounts them."""
    dev = rootfs / "dev"
    dev.mkdir(exist_ok=True)
    for name, minor in (("null", 3), ("urandom", 9)):
        node = dev / name
        if not node.exists():
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
            node.chmod(0o666)


def test_the_image_stays_within_its_size_budget(image: BuiltImage) -> None:
    report = image.report
    assert report.zstd_bytes <= BUDGET_ZSTD_BYTES, "\n".join(report.lines())
    assert report.uncompressed_bytes <= BUDGET_UNCOMPRESSED_BYTES, "\n".join(report.lines())
    assert report.gzip_bytes > report.zstd_bytes  # the two pushes did compress differently


@pytest.mark.xfail(
    strict=True, reason="issue 16's targets: below the native code's own size (see the constants)"
)
def test_the_image_meets_the_size_targets_of_issue_16(image: BuiltImage) -> None:
    assert image.report.zstd_bytes <= TARGET_ZSTD_BYTES
    assert image.report.uncompressed_bytes <= TARGET_UNCOMPRESSED_BYTES


def test_the_image_runs_as_a_user_and_holds_no_shell_compiler_or_installer(
    image: BuiltImage,
) -> None:
    assert image.config["User"] == f"{USER_ID}:{USER_ID}"
    assert image.config["Entrypoint"] == ["ledgerd"]
    assert {"org.opencontainers.image.version", "org.opencontainers.image.revision"} <= set(
        image.labels
    )
    assert image.labels["org.opencontainers.image.version"] != "unknown"
    names = {path.name for path in image.rootfs.rglob("*") if not path.is_dir()}
    assert not names & SHELLS
    assert not names & COMPILERS
    assert not names & INSTALLERS
    # Nor can the interpreter install anything: no pip or ensurepip to import.
    for module in ("pip", "ensurepip"):
        probe = subprocess.run(  # noqa: S603 - chroot into our image, fixed arguments
            [*image.argv()[:3], "/usr/bin/python3.11", "-c", f"import {module}"],
            check=False,
            capture_output=True,
            text=True,
            env=image.environment(),
        )
        assert "ModuleNotFoundError" in probe.stderr, probe.stderr
    # Only the data directory is the user's; the programs and libraries are root's, read-only.
    data = image.rootfs / "var/lib/ledgerd"
    assert data.stat().st_uid == USER_ID
    owned = [p for p in image.rootfs.rglob("*") if p.lstat().st_uid == USER_ID]
    assert all(path.is_relative_to(data) for path in owned), owned
    assert not [p for p in image.rootfs.rglob("*") if p.lstat().st_mode & stat.S_ISUID]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_image_migrates_serves_and_answers_an_authenticated_call(
    image: BuiltImage, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":
        database_url = str(request.getfixturevalue("postgres_url"))
    else:
        database_url = "sqlite+aiosqlite:////var/lib/ledgerd/ledgerd.db"  # the image's own
        for stale in (image.rootfs / "var/lib/ledgerd").glob("ledgerd.db*"):
            stale.unlink()  # an earlier run's
    env = image.environment(
        database_url=database_url,
        grpc_address="127.0.0.1:0",  # free ports: other tests serve on this machine too
        http_address="127.0.0.1:0",
        token_issuer=ISSUER,
    )
    await _run(image, env, "migrate")
    created = json.loads(
        await _run(
            image,
            env,
            "clients",
            "create",
            "image-test",
            "--scopes",
            "ledgers.admin,ledger.read",
            "--all-ledgers",
        )
    )
    server = await asyncio.create_subprocess_exec(
        *image.argv("serve"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output: list[str] = []
    try:
        rest = await _rest_address(server, output)
        assert _user_of(server.pid) == USER_ID
        async with httpx.AsyncClient(base_url=rest, timeout=COMMAND_WAIT_S) as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
            issued = await http.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(created["client_id"], created["client_secret"]),
            )
            assert issued.status_code == 200, issued.text
            token = issued.json()["access_token"]
            ledger = await http.post(
                "/v1/ledgers",
                json={"id": "image-books", "name": "From the image"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert ledger.status_code == 200, ledger.text
            assert ledger.json()["id"] == "image-books"
        # And over gRPC, with the image's own client command.
        grpc_port = next(m.group(1) for m in map(_GRPC_LINE.match, output) if m)
        listed = await _run(
            image,
            {**env, "LEDGERD_TOKEN": token},
            "ledgers",
            "list",
            "--server",
            f"127.0.0.1:{grpc_port}",
            "--output",
            "json",
        )
        assert "image-books" in listed
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(COMMAND_WAIT_S):
            rest_of_output, _ = await server.communicate()
        output += rest_of_output.decode().splitlines()
    assert server.returncode == 0, "\n".join(output)


_GRPC_LINE = re.compile(r"^gRPC\s+127\.0\.0\.1:(\d+)")


async def _run(image: BuiltImage, env: dict[str, str], *command: str) -> str:
    """``ledgerd COMMAND`` in the image to its end; its standard output (it must succeed)."""
    process = await asyncio.create_subprocess_exec(
        *image.argv(*command),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(COMMAND_WAIT_S):
        out, err = await process.communicate()
    assert process.returncode == 0, f"ledgerd {' '.join(command)}: {err.decode()}"
    return out.decode()


async def _rest_address(server: asyncio.subprocess.Process, output: list[str]) -> str:
    assert server.stdout is not None
    async with asyncio.timeout(COMMAND_WAIT_S):
        while raw := await server.stdout.readline():
            line = raw.decode().rstrip("\n")
            output.append(line)
            if match := REST_LINE.match(line):
                return match.group(1)
    msg = "serve ended before it listened:\n" + "\n".join(output)
    raise AssertionError(msg)


def _user_of(pid: int) -> int:
    """The real user id of process ``pid`` (chroot execs ledgerd, so it is the server)."""
    status = Path(f"/proc/{pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    return int(uid_line.split()[1])


# Run by the image's interpreter: one SQS message sent and one secret read, through aiobotocore
# as ledgerd's adapters use it, so botocore's pruned models, its endpoint rules and the
# dependencies' zip are all exercised. Arguments: endpoint, queue URL, secret id.
_AWS_FROM_THE_IMAGE = """
import asyncio, sys
from aiobotocore.session import get_session
import ledgerd.platform.messaging.sqs, ledgerd.platform.secrets.aws

async def main(endpoint, queue_url, secret_id):
    session = get_session()
    async with session.create_client("sqs", endpoint_url=endpoint) as sqs:
        await sqs.send_message(QueueUrl=queue_url, MessageBody="from the image",
                               MessageGroupId="image", MessageDeduplicationId="image-1")
    async with session.create_client("secretsmanager", endpoint_url=endpoint) as secrets:
        print((await secrets.get_secret_value(SecretId=secret_id))["SecretString"])

asyncio.run(main(*sys.argv[1:]))
"""


async def test_the_image_publishes_to_sqs_and_reads_secrets_manager(
    image: BuiltImage, tmp_path: Path
) -> None:
    """Against moto's server (an AWS emulator) on the host's loopback."""
    with emulated_aws(tmp_path / "moto.log") as endpoint:
        async with sqs_client(region=REGION, endpoint_url=endpoint) as sqs:
            queue_url = (
                await sqs.create_queue(QueueName="image.fifo", Attributes={"FifoQueue": "true"})
            )["QueueUrl"]
            session = get_session()
            async with session.create_client(
                "secretsmanager", region_name=REGION, endpoint_url=endpoint
            ) as secrets:
                await secrets.create_secret(Name="image/database", SecretString="s3cret")
            env = {**image.environment(), **ENVIRONMENT, "AWS_DEFAULT_REGION": REGION}
            process = await asyncio.create_subprocess_exec(
                *image.argv()[:3],
                "/usr/bin/python3.11",
                "-c",
                _AWS_FROM_THE_IMAGE,
                endpoint,
                queue_url,
                "image/database",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            async with asyncio.timeout(COMMAND_WAIT_S):
                out, err = await process.communicate()
            assert process.returncode == 0, err.decode()
            assert out.decode().strip() == "s3cret"
            received = await sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)
            assert [m["Body"] for m in received["Messages"]] == ["from the image"]


def test_the_image_renders_a_traceback_with_rich(image: BuiltImage) -> None:
    """Pygments is cut to the lexers Rich uses for a traceback: Python's, and plain text."""
    snippet = (
        "import rich.console, rich.syntax\n"
        "console = rich.console.Console(force_terminal=True, width=60)\n"
        "console.print(rich.syntax.Syntax('def f():\\n    return 1', 'python'))\n"
        "console.print(rich.syntax.Syntax('plain', 'text'))\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    console.print_exception()\n"
    )
    probe = subprocess.run(  # noqa: S603 - chroot into our image, fixed arguments
        [*image.argv()[:3], "/usr/bin/python3.11", "-c", snippet],
        check=False,
        capture_output=True,
        text=True,
        env=image.environment(),
    )
    assert probe.returncode == 0, probe.stderr
    assert "ZeroDivisionError" in probe.stdout
    assert "\x1b[" in probe.stdout  # highlighted, not plain


# Every module of ledgerd, imported by the image's interpreter: what the pruning and the
# dependencies' zip left must be enough for all of them, not only for the commands run above.
# The Lambda handler needs the `lambda` extra, which the image does not hold (make lambda-zip).
_IMPORT_EVERY_MODULE = """
import importlib, pkgutil, ledgerd
failed = []
for module in pkgutil.walk_packages(ledgerd.__path__, "ledgerd."):
    if ".migrations." in module.name or module.name == "ledgerd.main.lambda_handler":
        continue
    try:
        importlib.import_module(module.name)
    except Exception as error:
        failed.append(f"{module.name}: {error!r}")
print("\\n".join(failed))
"""


def test_every_ledgerd_module_imports_in_the_image(image: BuiltImage) -> None:
    probe = subprocess.run(  # noqa: S603 - chroot into our image, fixed arguments
        [*image.argv()[:3], "/usr/bin/python3.11", "-c", _IMPORT_EVERY_MODULE],
        check=False,
        capture_output=True,
        text=True,
        env=image.environment(),
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "", probe.stdout
