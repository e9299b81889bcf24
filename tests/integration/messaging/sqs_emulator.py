"""moto's server, an AWS emulator, run on a free port for the SQS adapter's tests.

What moto 5.2 does and does not do for SQS, as these tests rely on it (read from its source
and checked by the tests):

- FIFO order: messages come out in the order they were stored; a group with a message in
  flight is held back from the next ReceiveMessage call (several messages of one group can
  come in one call, as on SQS).
- Deduplication: a MessageDeduplicationId seen within 5 minutes is dropped, but only while
  the first message is still on the queue: once it has been deleted, moto accepts the same id
  again, where SQS would still drop it.
- Visibility: ReceiveMessage's VisibilityTimeout, ChangeMessageVisibility(0) and its batch
  form behave as on SQS.
- Concurrent long polls race: each ReceiveMessage call notes which FIFO groups have messages
  in flight when it starts, so two calls waiting at once can split one group between them
  and a later message can go out while earlier ones are taken. It happens when a client
  retries a long poll whose answer was lost (the abandoned call goes on inside moto), so the
  contract's subscriber does not go through the proxy that the outages cut.
- Cost: each message sent or received counts the whole queue (its approximate-number
  attributes), so a deep queue is slow (a thousand messages: seconds per hundred).
- Not emulated: the format of MessageGroupId and MessageDeduplicationId (any string is
  taken), the characters allowed in a body (a NUL is stored as it is), per-entry failures of
  SendMessageBatch (only an invalid DelaySeconds fails an entry; everything else fails the
  whole request), ReceiveRequestAttemptId, throttling. Its size limit is 1 MiB.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from ledgerd.platform.messaging.sqs import sqs_client
from tests.conftest import service_unavailable
from tests.network import free_port

REGION = "eu-west-1"
# Dummy credentials, and nothing from the developer's own AWS set-up.
ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/ledgerd-tests/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/ledgerd-tests/aws-credentials",
}
UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")
_START_WAIT_S = 30.0
_STOP_WAIT_S = 5.0
# Characters SQS takes in a body (XML's); SQS stores U+FFFD for any other.
_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@contextlib.contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """Run moto's server on 127.0.0.1 until the block ends; yield its endpoint URL."""
    port = free_port()
    with log.open("wb") as output:
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        except OSError as error:
            service_unavailable(f"no SQS emulator: cannot start moto's server: {error}")
    try:
        _wait_until_listening(process, port, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def emulated_aws(log: Path) -> Iterator[str]:
    """Moto's server, its endpoint yielded, with dummy credentials in the environment.

    In this process's environment, and so in the ``ledgerd`` processes a test starts; nothing of
    the developer's own AWS set-up is left in it.
    """
    with pytest.MonkeyPatch.context() as environment:
        for name in UNSET:
            environment.delenv(name, raising=False)
        for name, value in ENVIRONMENT.items():
            environment.setenv(name, value)
        with moto_server(log) as endpoint:
            yield endpoint


def sqs_text(raw: bytes) -> str:
    """``raw`` as the body SQS would store for it: text, any other character as U+FFFD."""
    return _NOT_SQS_TEXT.sub("\ufffd", raw.decode("utf-8", "replace"))


async def send_raw(
    endpoint_url: str, queue_url: str, body: bytes, headers: Mapping[str, str]
) -> None:
    """Put a message on the queue as a foreign producer would, headers as attributes."""
    async with sqs_client(region=REGION, endpoint_url=endpoint_url) as client:
        await client.send_message(
            QueueUrl=queue_url,
            MessageBody=sqs_text(body),
            MessageGroupId="foreign-producer",
            MessageDeduplicationId=str(uuid.uuid4()),
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value}
                for name, value in headers.items()
            },
        )


async def message_counts(endpoint_url: str, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages on the queue; exact on moto, approximate on SQS."""
    async with sqs_client(region=REGION, endpoint_url=endpoint_url) as client:
        answer = await client.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
    attributes = answer["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + _START_WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            service_unavailable(
                f"no SQS emulator: moto's server exited ({process.returncode}): {_tail(log)}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.05)  # polling for the port, bounded by the deadline
        else:
            return
    process.kill()
    process.wait()
    service_unavailable(f"no SQS emulator: moto's server did not listen on {port}: {_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] or "(no output)"
