"""The certificate files of ``ledgerd serve``: refused at start-up, reloaded on SIGHUP.

A problem at start-up is one line naming the setting, and exit code 2. Later, a change that
cannot be used (a half-written certificate, a key that is not its) is warned about and the
certificates in use stay; SIGHUP reloads at once, however long the polling interval.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from ledgerd.platform.tls.dev_ca import Usage
from tests.e2e.grpc.test_serve import LEDGERD, ledgerd_environment, ledgerd_serve
from tests.e2e.tls.certificates import Pair, ca, leaf, served_serial

EXIT_ERROR = 2
EXIT_WAIT_S = 60.0
RELOAD_WAIT_S = 10.0
# Longer than any test: only SIGHUP can reload.
NEVER_S = "3600"


async def _serve_exit(tmp_path: Path, **settings: str) -> tuple[int, list[str]]:
    """``ledgerd serve``'s exit code and output lines, for settings it must refuse."""
    env = ledgerd_environment(
        f"sqlite+aiosqlite:///{tmp_path}/ledgerd.db",
        grpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        **settings,
    )
    process = await asyncio.create_subprocess_exec(
        str(LEDGERD),
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(EXIT_WAIT_S):
        _out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, err.decode().splitlines()


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    authority, _ = ca(tmp_path, "ca")
    return leaf(tmp_path, authority, "server", usage=Usage.SERVER)[1]


async def test_a_missing_certificate_is_one_line_naming_its_setting(
    tmp_path: Path, pair: Pair
) -> None:
    missing = tmp_path / "absent.pem"
    code, lines = await _serve_exit(
        tmp_path, tls_cert_file=str(missing), tls_key_file=str(pair.key)
    )
    assert code == EXIT_ERROR
    assert lines == [f"error: LEDGERD_TLS_CERT_FILE='{missing}': No such file or directory"]


async def test_a_key_that_is_not_the_certificates_is_refused(tmp_path: Path, pair: Pair) -> None:
    authority, _ = ca(tmp_path, "other")
    other = leaf(tmp_path, authority, "other-server", usage=Usage.SERVER)[1]
    code, lines = await _serve_exit(
        tmp_path, tls_cert_file=str(pair.certificate), tls_key_file=str(other.key)
    )
    assert code == EXIT_ERROR
    assert lines == [
        (
            f"error: LEDGERD_TLS_KEY_FILE='{other.key}': not the key of the certificate in "
            f"{pair.certificate}"
        )
    ]


async def test_unusable_files_name_their_setting(tmp_path: Path, pair: Pair) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    cases = {
        "LEDGERD_TLS_CERT_FILE": {"tls_cert_file": str(garbage), "tls_key_file": str(pair.key)},
        "LEDGERD_GRPC_CLIENT_CA": {
            "tls_cert_file": str(pair.certificate),
            "tls_key_file": str(pair.key),
            "grpc_client_ca": str(tmp_path),  # a directory: unreadable as a file
        },
    }
    for setting, settings in cases.items():
        code, lines = await _serve_exit(tmp_path, **settings)
        assert code == EXIT_ERROR, lines
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"error: {setting}="), lines


async def test_half_the_settings_is_a_settings_error(tmp_path: Path, pair: Pair) -> None:
    code, lines = await _serve_exit(tmp_path, tls_cert_file=str(pair.certificate))
    assert code == EXIT_ERROR
    assert lines == [
        "error: LEDGERD_TLS_CERT_FILE and LEDGERD_TLS_KEY_FILE go together: set both or neither"
    ]


async def _served_serial_becomes(port: int, ca_file: Path, serial: int) -> None:
    async with asyncio.timeout(RELOAD_WAIT_S):
        # A handshake is the only way to see it: asked again until it shows.
        while await asyncio.to_thread(served_serial, port, ca_file) != serial:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_sighup_reloads_at_once_and_a_bad_change_is_not_loaded(tmp_path: Path) -> None:
    authority, ca_file = ca(tmp_path, "ca")
    first, pair = leaf(tmp_path, authority, "server", usage=Usage.SERVER)
    async with ledgerd_serve(
        f"sqlite+aiosqlite:///{tmp_path}/ledgerd.db",
        tls_cert_file=str(pair.certificate),
        tls_key_file=str(pair.key),
        tls_reload_interval_seconds=NEVER_S,
    ) as served:
        served.drain()
        port = served.port
        assert served_serial(port, ca_file) == first.certificate.serial_number

        # Another certificate beside the old key: refused, the old pair keeps serving.
        mismatched, _ = leaf(tmp_path, authority, "stray", usage=Usage.SERVER)
        pair.certificate.write_bytes(mismatched.certificate_pem())
        served.process.send_signal(signal.SIGHUP)
        async with asyncio.timeout(RELOAD_WAIT_S):
            # The log is read by a task of the fixture's: no event to wait on.
            while not any("not reloaded" in line for line in served.output):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert served_serial(port, ca_file) == first.certificate.serial_number
        warning = next(line for line in served.output if "not reloaded" in line)
        assert "WARNING" in warning
        assert "LEDGERD_TLS_KEY_FILE" in warning

        renewed, _ = leaf(tmp_path, authority, "server", usage=Usage.SERVER)
        served.process.send_signal(signal.SIGHUP)
        await _served_serial_becomes(port, ca_file, renewed.certificate.serial_number)

        served.process.send_signal(signal.SIGTERM)
        assert await served.wait_for_exit() == 0, served.log
    assert "Traceback" not in served.log
