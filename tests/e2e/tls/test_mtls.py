"""``ledgerd serve`` with TLS and required client certificates, over real sockets.

One server for the module (auth required, mTLS, certificates polled every 0.2 s); each test
dials it with the certificates it needs, all made by the development CA.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_status import rpc_status

from ledgerd.platform.api.grpc_errors import error_of
from ledgerd.platform.tls.dev_ca import Issued, Usage
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc
from tests.e2e.grpc.test_serve import LEDGERD, START_WAIT_S, STOP_WAIT_S, ledgerd_environment
from tests.e2e.tls.certificates import Pair, ca, leaf, now, served_serial
from tests.network import free_port

CALL_TIMEOUT_S = 10.0
PAYOUTS = "spiffe://ledgerd.test/payouts"
STRANGER = "spiffe://ledgerd.test/stranger"
LEDGER = "main"
# The payouts service may read its ledger and create ledgers; it may not move money.
IDENTITIES = {PAYOUTS: {"scopes": ["ledger.read", "ledgers.admin"], "ledgers": [LEDGER]}}
RELOAD_INTERVAL_S = "0.2"
ROTATION_WAIT_S = 15.0
EXIT_ERROR = 2
EXIT_UNREACHABLE = 3


@dataclass(frozen=True, slots=True)
class Deployment:
    directory: Path
    ca: Issued
    ca_file: Path
    server: Pair
    grpc_port: int
    http_port: int
    log: Path
    payouts: Pair
    stranger: Pair
    expired: Pair
    foreign: Pair  # the payouts identity, from another CA

    @property
    def grpc_target(self) -> str:
        return f"localhost:{self.grpc_port}"


def _start(directory: Path, log_path: Path, **settings: str) -> subprocess.Popen[bytes]:
    env = ledgerd_environment(f"sqlite+aiosqlite:///{directory}/ledgerd.db", **settings)
    with log_path.open("w") as log:
        return subprocess.Popen(  # noqa: S603 - our own console script
            [str(LEDGERD), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_listening(port: int, log: Path) -> None:
    deadline = time.monotonic() + START_WAIT_S
    while "REST  https://" not in log.read_text():
        if time.monotonic() > deadline:
            pytest.fail(f"ledgerd serve did not start on {port}:\n{log.read_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("mtls")
    authority, ca_file = ca(directory, "ca")
    _, server = leaf(directory, authority, "server", usage=Usage.SERVER)
    _, payouts = leaf(directory, authority, "payouts", usage=Usage.CLIENT, uris=(PAYOUTS,))
    _, stranger = leaf(directory, authority, "stranger", usage=Usage.CLIENT, uris=(STRANGER,))
    _, expired = leaf(
        directory,
        authority,
        "expired",
        usage=Usage.CLIENT,
        uris=(PAYOUTS,),
        issued_at=now() - timedelta(days=2),
    )
    other, _ = ca(directory, "other-ca")
    _, foreign = leaf(directory, other, "foreign", usage=Usage.CLIENT, uris=(PAYOUTS,))
    grpc_port, http_port = free_port(), free_port()
    log = directory / "serve.log"
    process = _start(
        directory,
        log,
        auth="required",
        grpc_address=f"127.0.0.1:{grpc_port}",
        http_address=f"127.0.0.1:{http_port}",
        tls_cert_file=str(server.certificate),
        tls_key_file=str(server.key),
        grpc_client_ca=str(ca_file),
        mtls_identities=json.dumps(IDENTITIES),
        tls_reload_interval_seconds=RELOAD_INTERVAL_S,
    )
    try:
        _wait_listening(grpc_port, log)
        deployed = Deployment(
            directory,
            authority,
            ca_file,
            server,
            grpc_port,
            http_port,
            log,
            payouts,
            stranger,
            expired,
            foreign,
        )
        with _channel(deployed, payouts) as channel:
            ledger_pb2_grpc.LedgerServiceStub(channel).CreateLedger(
                pb.CreateLedgerRequest(id=LEDGER), timeout=CALL_TIMEOUT_S
            )
        yield deployed
    finally:
        _stop(process)


def _channel(deployment: Deployment, client: Pair | None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=deployment.ca_file.read_bytes(),
        private_key=None if client is None else client.key.read_bytes(),
        certificate_chain=None if client is None else client.certificate.read_bytes(),
    )
    return grpc.secure_channel(deployment.grpc_target, credentials)


def _refusal(deployment: Deployment, client: Pair | None, request: pb.GetLedgerRequest) -> str:
    """The code a GetLedger call ends with: ledgerd's own code when it has one, else gRPC's."""
    with _channel(deployment, client) as channel:
        try:
            ledger_pb2_grpc.LedgerServiceStub(channel).GetLedger(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as error:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            known = None if status is None else error_of(status)
            return str(known.code) if known is not None else error.code().name
    return "OK"


@pytest.mark.parametrize(
    ("client", "code"),
    [
        (None, "UNAVAILABLE"),  # no client certificate: the handshake is refused
        ("foreign", "UNAVAILABLE"),  # the right identity, from a CA the server does not trust
        ("expired", "UNAVAILABLE"),
        ("stranger", "UNAUTHENTICATED"),  # valid, but its identity is granted nothing
    ],
)
def test_a_client_certificate_that_cannot_be_used_is_refused(
    deployment: Deployment, client: str | None, code: str
) -> None:
    pair = None if client is None else getattr(deployment, client)
    assert _refusal(deployment, pair, pb.GetLedgerRequest(ledger=LEDGER)) == code


def test_a_mapped_certificate_calls_as_its_grant(deployment: Deployment) -> None:
    with _channel(deployment, deployment.payouts) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        assert (
            stub.GetLedger(pb.GetLedgerRequest(ledger=LEDGER), timeout=CALL_TIMEOUT_S).id == LEDGER
        )
    assert (
        _refusal(deployment, deployment.payouts, pb.GetLedgerRequest(ledger="elsewhere"))
        == "LEDGER_NOT_FOUND"
    )
    with _channel(deployment, deployment.payouts) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.CreateAccount(
                pb.CreateAccountRequest(ledger=LEDGER, id="bank", asset="USD/2"),
                timeout=CALL_TIMEOUT_S,
            )
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None
    known = error_of(status)
    assert known is not None
    assert known.code == "INSUFFICIENT_SCOPE"
    assert known.details["scope"] == "ledger.write"


def test_a_bearer_token_is_judged_by_itself_over_mtls(deployment: Deployment) -> None:
    # A token is the call's credential when it carries one: a bad token is refused even
    # though the certificate alone would have been granted the call.
    with _channel(deployment, deployment.payouts) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetLedger(
                pb.GetLedgerRequest(ledger=LEDGER),
                timeout=CALL_TIMEOUT_S,
                metadata=(("authorization", "Bearer not.a.token"),),
            )
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_rest_answers_over_tls_with_the_ca(deployment: Deployment) -> None:
    with httpx.Client(verify=_trusting(deployment), timeout=CALL_TIMEOUT_S) as client:
        answer = client.get(f"https://localhost:{deployment.http_port}/healthz")
    assert answer.status_code == 200
    assert answer.text == "ok"
    with (
        httpx.Client(timeout=CALL_TIMEOUT_S) as untrusting,
        pytest.raises(httpx.ConnectError),
    ):
        untrusting.get(f"https://localhost:{deployment.http_port}/healthz")


class _Caller(threading.Thread):
    """Calls ``call`` until told to stop, counting calls and failures."""

    def __init__(self, call: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self._call = call
        self.stop = threading.Event()
        self.calls = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._call()
            except Exception as error:  # noqa: BLE001 - every failure is counted, and shown
                self.failures.append(repr(error))
            self.calls += 1


def test_a_replaced_server_certificate_reaches_new_connections_and_no_call_fails(
    deployment: Deployment,
) -> None:
    before_grpc = served_serial(deployment.grpc_port, deployment.ca_file, deployment.payouts)
    before_rest = served_serial(deployment.http_port, deployment.ca_file)
    assert before_grpc == before_rest

    with _channel(deployment, deployment.payouts) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        grpc_caller = _Caller(
            lambda: stub.GetLedger(pb.GetLedgerRequest(ledger=LEDGER), timeout=CALL_TIMEOUT_S)
        )
        # A new connection for every REST call: each handshake sees the certificate of now.
        rest_caller = _Caller(lambda: _fresh_rest_call(deployment))
        grpc_caller.start()
        rest_caller.start()
        try:
            time.sleep(0.3)
            renewed, _ = leaf(deployment.directory, deployment.ca, "server", usage=Usage.SERVER)
            new_serial = renewed.certificate.serial_number
            deadline = time.monotonic() + ROTATION_WAIT_S
            while served_serial(deployment.http_port, deployment.ca_file) != new_serial:
                assert time.monotonic() < deadline, deployment.log.read_text()
                time.sleep(0.05)
            grpc_serial = served_serial(
                deployment.grpc_port, deployment.ca_file, deployment.payouts
            )
            time.sleep(0.3)
        finally:
            grpc_caller.stop.set()
            rest_caller.stop.set()
            grpc_caller.join(CALL_TIMEOUT_S)
            rest_caller.join(CALL_TIMEOUT_S)

    assert grpc_serial == new_serial != before_grpc
    assert grpc_caller.calls > 0
    assert rest_caller.calls > 0
    assert grpc_caller.failures == []
    assert rest_caller.failures == []
    # A new channel calls through the new certificate.
    with _channel(deployment, deployment.payouts) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        assert (
            stub.GetLedger(pb.GetLedgerRequest(ledger=LEDGER), timeout=CALL_TIMEOUT_S).id == LEDGER
        )


def _trusting(deployment: Deployment) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=deployment.ca_file)


def _fresh_rest_call(deployment: Deployment) -> None:
    with httpx.Client(verify=_trusting(deployment), timeout=CALL_TIMEOUT_S) as client:
        client.get(f"https://localhost:{deployment.http_port}/healthz").raise_for_status()


@contextlib.contextmanager
def _gateway(deployment: Deployment, name: str, **client: str) -> Iterator[str]:
    """A second ``serve`` whose REST gateway forwards to the mTLS server; its base URL."""
    directory = deployment.directory / name
    directory.mkdir()
    grpc_port, http_port = free_port(), free_port()
    log = directory / "serve.log"
    process = _start(
        directory,
        log,
        grpc_address=f"127.0.0.1:{grpc_port}",
        http_address=f"127.0.0.1:{http_port}",
        gateway_forward_to=deployment.grpc_target,
        grpc_server_ca=str(deployment.ca_file),
        **client,
    )
    try:
        deadline = time.monotonic() + START_WAIT_S
        while "REST  http://" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{http_port}"
    finally:
        _stop(process)


def test_the_gateway_forwards_over_mtls_presenting_its_certificate(
    deployment: Deployment,
) -> None:
    with (
        _gateway(
            deployment,
            "with-certificate",
            grpc_client_cert_file=str(deployment.payouts.certificate),
            grpc_client_key_file=str(deployment.payouts.key),
        ) as presenting,
        _gateway(deployment, "without-certificate") as bare,
        httpx.Client(timeout=CALL_TIMEOUT_S) as client,
    ):
        forwarded = client.get(f"{presenting}/v1/ledgers/{LEDGER}")
        refused = client.get(f"{bare}/v1/ledgers/{LEDGER}")
    assert forwarded.status_code == 200, forwarded.text
    assert forwarded.json()["id"] == LEDGER
    # No certificate: the mTLS server refuses the handshake, so the gateway cannot reach it.
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "UNAVAILABLE"


def _client_command(deployment: Deployment, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own console script with fixed arguments
        [str(LEDGERD), "ledgers", "list"],
        env={
            **os.environ,
            "LEDGERD_SERVER": f"127.0.0.1:{deployment.grpc_port}",
            **{f"LEDGERD_{name.upper()}": value for name, value in variables.items()},
        },
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT_S * 2,
        check=False,
    )


def test_the_client_commands_call_over_mtls(deployment: Deployment) -> None:
    listed = _client_command(
        deployment,
        grpc_server_ca=str(deployment.ca_file),
        grpc_client_cert_file=str(deployment.payouts.certificate),
        grpc_client_key_file=str(deployment.payouts.key),
    )
    assert listed.returncode == 0, listed.stderr
    assert LEDGER in listed.stdout

    without = _client_command(deployment, grpc_server_ca=str(deployment.ca_file))
    assert without.returncode == EXIT_UNREACHABLE, without.stderr
    assert "cannot reach ledgerd" in without.stderr

    missing = _client_command(
        deployment,
        grpc_server_ca=str(deployment.directory / "nowhere.pem"),
    )
    assert missing.returncode == EXIT_ERROR
    assert missing.stderr.strip().splitlines() == [
        (
            f"error: LEDGERD_GRPC_SERVER_CA='{deployment.directory / 'nowhere.pem'}': "
            "No such file or directory"
        )
    ]


def test_the_gateway_presents_its_renewed_client_certificate_without_a_restart(
    deployment: Deployment,
) -> None:
    # The gateway starts with a certificate whose identity is granted nothing, then its files
    # are replaced by one for the payouts identity: the calls after are made as payouts.
    _, files = leaf(
        deployment.directory, deployment.ca, "gateway", usage=Usage.CLIENT, uris=(STRANGER,)
    )
    with (
        _gateway(
            deployment,
            "renewing",
            grpc_client_cert_file=str(files.certificate),
            grpc_client_key_file=str(files.key),
            tls_reload_interval_seconds=RELOAD_INTERVAL_S,
        ) as gateway,
        httpx.Client(timeout=CALL_TIMEOUT_S) as client,
    ):
        url = f"{gateway}/v1/ledgers/{LEDGER}"
        refused = client.get(url)
        assert refused.status_code == 401, refused.text
        assert "granted nothing" in refused.json()["message"]

        leaf(deployment.directory, deployment.ca, "gateway", usage=Usage.CLIENT, uris=(PAYOUTS,))
        deadline = time.monotonic() + ROTATION_WAIT_S
        while (answer := client.get(url)).status_code != 200:
            assert answer.status_code == 401, answer.text
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.05)
        assert answer.json()["id"] == LEDGER
