"""The `secret://` grammar: what parses to what, and what is refused without showing itself."""

from __future__ import annotations

import logging
import pickle

import pytest

from ledgerd.platform.secrets.references import (
    MalformedReferenceError,
    SecretReference,
    parse_reference,
)
from ledgerd.platform.secrets.secret import REDACTED, Secret


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("secret://env/DB_URL", SecretReference("env", "DB_URL")),
        ("secret://file/run/secrets/db", SecretReference("file", "/run/secrets/db")),
        (
            "secret://vault/kv/ledgerd/db#url",
            SecretReference("vault", "kv/ledgerd/db", "url"),
        ),
        (
            "secret://vault/kv/ledgerd/db#url?version=3",
            SecretReference("vault", "kv/ledgerd/db", "url", (("version", "3"),)),
        ),
        ("secret://aws/ledgerd/db", SecretReference("aws", "ledgerd/db")),
        ("secret://aws/ledgerd/db#url", SecretReference("aws", "ledgerd/db", "url")),
        (
            "secret://aws/ledgerd/db#url?stage=AWSPENDING",
            SecretReference("aws", "ledgerd/db", "url", (("stage", "AWSPENDING"),)),
        ),
        (
            "secret://aws/arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf",
            SecretReference(
                "aws", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
            ),
        ),
        (
            "secret://vault-db/database/creds/ledgerd",
            SecretReference("vault-db", "database/creds/ledgerd"),
        ),
    ],
)
def test_a_reference_parses_and_prints_back_as_written(
    text: str, expected: SecretReference
) -> None:
    assert parse_reference(text) == expected
    assert str(parse_reference(text)) == text


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("secret://vault/kv/ledgerd/db", "secret://vault/MOUNT/PATH#FIELD"),  # no field
        ("secret://vault/kv#url", "secret://vault/MOUNT/PATH#FIELD"),  # no path under the mount
        ("secret://vault/kv/db#url?version=latest", "secret://vault/MOUNT/PATH#FIELD"),
        ("secret://vault/kv/db#url?stage=AWSCURRENT", "secret://vault/MOUNT/PATH#FIELD"),
        ("secret://vault/kv/../sys/db#url", "secret://vault/MOUNT/PATH#FIELD"),
        ("secret://vault/kv//db#url", "secret://vault/MOUNT/PATH#FIELD"),
        ("secret://aws/db?stage=AWSCURRENT&version=x", "secret://aws/SECRET_ID"),
        ("secret://aws/db?colour=blue", "secret://aws/SECRET_ID"),
        ("secret://aws/db#", "secret://aws/SECRET_ID"),
        ("secret://file/run/secrets/db#url", "secret://file/ABSOLUTE/PATH"),
        ("secret://file/../etc/shadow", "secret://file/ABSOLUTE/PATH"),
        ("secret://env/1NAME", "secret://env/NAME"),
        ("secret://vault-db/database/ledgerd", "secret://vault-db/MOUNT/creds/ROLE"),
        ("secret://vault-db/database/creds/a/b", "secret://vault-db/MOUNT/creds/ROLE"),
        ("secret://vault-db/database/creds/", "secret://vault-db/MOUNT/creds/ROLE"),
        ("secret://vault-db/database/creds/ledgerd#password", "secret://vault-db/MOUNT/"),
        ("secret://vault-db/database/creds/ledgerd?ttl=1h", "secret://vault-db/MOUNT/"),
        ("secret://s3/bucket/key", "secret://{env,file,vault,aws,vault-db}"),
        ("secret://vault", "secret://{env,file,vault,aws,vault-db}"),
        ("secret:/vault/kv/db#url", "secret://{env,file,vault,aws,vault-db}"),
    ],
)
def test_a_malformed_reference_is_refused_naming_the_shape_not_the_text(
    text: str, shape: str
) -> None:
    with pytest.raises(MalformedReferenceError) as refused:
        parse_reference(text)
    assert shape in str(refused.value)
    assert text not in str(refused.value)


def test_a_secret_shows_nothing_of_itself_in_repr_str_format_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = Secret("hunter2-the-password")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret]), "%s" % secret]  # noqa: UP031 - the %-form is what logging does
    logging.getLogger("test").warning("connecting with %s (%r)", secret, secret)
    assert all("hunter2" not in text for text in shown), shown
    assert REDACTED in str(secret)
    assert "hunter2" not in caplog.text
    assert secret.reveal() == "hunter2-the-password"
    assert secret == Secret("hunter2-the-password")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
