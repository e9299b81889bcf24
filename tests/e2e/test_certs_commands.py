"""``ledgerd certs init|issue``: a development CA and its certificates, from the command line."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from typer.testing import CliRunner, Result

from ledgerd.main.cli import app

EXIT_ERROR = 2


def _certs(*args: str) -> Result:
    return CliRunner().invoke(app, ["certs", *args])


def _certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_then_issue_makes_private_files_that_verify(tmp_path: Path) -> None:
    directory = str(tmp_path / "certs")
    made = _certs("init", "--dir", directory)
    assert made.exit_code == 0, made.output
    server = _certs("issue", "server", "--dir", directory, "--hours", "2")
    assert server.exit_code == 0, server.output
    client = _certs(
        "issue", "payouts", "--client", "--uri", "spiffe://t/payouts", "--dir", directory
    )
    assert client.exit_code == 0, client.output

    files = sorted(path.name for path in (tmp_path / "certs").iterdir())
    assert files == ["ca.key", "ca.pem", "payouts.key", "payouts.pem", "server.key", "server.pem"]
    for path in (tmp_path / "certs").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    ca = _certificate(tmp_path / "certs" / "ca.pem")
    store = PolicyBuilder().store(Store([ca]))
    leaf = _certificate(tmp_path / "certs" / "server.pem")
    assert store.build_server_verifier(x509.DNSName("localhost")).verify(leaf, [])[-1] == ca
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime.total_seconds() <= 2 * 3600 + 5 * 60 + 1  # two hours, plus the skew margin
    verified = store.build_client_verifier().verify(
        _certificate(tmp_path / "certs" / "payouts.pem"), []
    )
    assert verified.subjects == [x509.UniformResourceIdentifier("spiffe://t/payouts")]


def test_mistakes_are_one_line_and_exit_2(tmp_path: Path) -> None:
    directory = str(tmp_path)
    no_ca = _certs("issue", "server", "--dir", directory)
    assert no_ca.exit_code == EXIT_ERROR
    assert "no CA in" in no_ca.output
    assert _certs("init", "--dir", directory).exit_code == 0
    again = _certs("init", "--dir", directory)
    assert again.exit_code == EXIT_ERROR
    assert "holds a CA already" in again.output
    nameless = _certs("issue", "x", "--client", "--dir", directory)
    assert nameless.exit_code == EXIT_ERROR
    assert "needs a DNS name" in nameless.output
    assert _certs("issue", "../x", "--dir", directory).exit_code == EXIT_ERROR
    assert _certs("issue", "x", "--hours", "0", "--dir", directory).exit_code == EXIT_ERROR
