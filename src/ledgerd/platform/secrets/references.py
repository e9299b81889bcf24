"""The grammar of a secret reference, parsed strictly.

::

    secret://env/NAME                         the environment variable NAME
    secret://file/ABSOLUTE/PATH               a file's content (one trailing newline dropped)
    secret://vault/MOUNT/PATH#FIELD[?version=N]
                                              a field of an OpenBao/Vault KV v2 secret
    secret://aws/SECRET_ID[#FIELD][?stage=LABEL | ?version=VERSION_ID]
                                              an AWS Secrets Manager secret: its SecretString,
                                              or one field of it as JSON; AWSCURRENT unless
                                              a stage or a version is named
    secret://vault-db/MOUNT/creds/ROLE        dynamic database credentials leased from an
                                              OpenBao/Vault database engine (``leases``)

A setting that does not start with ``secret://`` is a plain value. A refused reference's error
says which shape was expected, never what was given: a mistyped reference may be a pasted
password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

PREFIX: Final = "secret://"
StoreName = Literal["env", "file", "vault", "aws", "vault-db"]

SHAPES: Final[dict[str, str]] = {
    "env": "secret://env/NAME",
    "file": "secret://file/ABSOLUTE/PATH",
    "vault": "secret://vault/MOUNT/PATH#FIELD[?version=N]",
    "aws": "secret://aws/SECRET_ID[#FIELD][?stage=LABEL|?version=ID]",
    "vault-db": "secret://vault-db/MOUNT/creds/ROLE",
}
ANY_SHAPE: Final = "secret://{env,file,vault,aws,vault-db}/... (docs/security.md, 'Secrets')"

_SEGMENT = r"[A-Za-z0-9._+=@:-]+"
_PATH = re.compile(rf"{_SEGMENT}(/{_SEGMENT})*")
_FIELD = re.compile(r"[A-Za-z0-9._-]{1,128}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_VERSION = re.compile(r"[0-9]{1,18}")
_AWS_LABEL = re.compile(r"[A-Za-z0-9_+=.@-]{1,256}")
_AWS_VERSION = re.compile(r"[A-Za-z0-9-]{32,64}")


class MalformedReferenceError(ValueError):
    """A ``secret://`` value that is no reference; the message holds the shape expected only."""


@dataclass(frozen=True, slots=True)
class SecretReference:
    """Where a secret lives; it holds no secret, so it may be shown (it names the secret)."""

    store: StoreName
    # env: the variable; file: the absolute path; vault: MOUNT/PATH; aws: the secret id;
    # vault-db: MOUNT/creds/ROLE.
    path: str
    # The field of a structured secret (vault: required; aws: optional JSON key).
    field: str | None = None
    # vault: {"version": N}; aws: {"stage": LABEL} or {"version": ID}.
    options: tuple[tuple[str, str], ...] = ()

    @property
    def mount(self) -> str:
        return self.path.partition("/")[0]

    @property
    def secret_path(self) -> str:
        return self.path.partition("/")[2]

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name)

    def __str__(self) -> str:
        text = f"{PREFIX}{self.store}/{self.path.removeprefix('/')}"
        if self.field is not None:
            text += f"#{self.field}"
        if self.options:
            text += "?" + "&".join(f"{name}={value}" for name, value in self.options)
        return text


def is_reference(value: str) -> bool:
    return value.startswith(PREFIX)


def parse_reference(text: str) -> SecretReference:
    """``text`` as a reference, or ``MalformedReferenceError`` saying the shape it must have."""
    if not is_reference(text):
        raise MalformedReferenceError(f"not a secret reference: expected {ANY_SHAPE}")
    store, slash, rest = text.removeprefix(PREFIX).partition("/")
    if store not in SHAPES or not slash:
        raise MalformedReferenceError(f"unknown secret store: expected {ANY_SHAPE}")
    shape = SHAPES[store]
    rest, question, query = rest.partition("?")
    path, hash_mark, field_name = rest.partition("#")
    if "?" in field_name or "#" in field_name or (hash_mark and not field_name):
        raise _malformed(shape)
    options = _options(query, shape) if question else ()
    if store in {"env", "file"}:
        if hash_mark or options:
            raise _malformed(shape)
        return _local(store, path, shape)
    if field_name and not _FIELD.fullmatch(field_name):
        raise _malformed(shape)
    if not _PATH.fullmatch(path) or ".." in path.split("/"):
        raise _malformed(shape)
    if store == "vault":
        return _vault(path, field_name, options, shape)
    if store == "vault-db":
        return _vault_db(path, field_name, options, shape)
    return _aws(path, field_name, options, shape)


def _local(store: str, path: str, shape: str) -> SecretReference:
    if store == "env":
        if not _ENV_NAME.fullmatch(path):
            raise _malformed(shape)
        return SecretReference("env", path)
    if not _PATH.fullmatch(path) or ".." in path.split("/"):
        raise _malformed(shape)
    return SecretReference("file", "/" + path)


def _vault(
    path: str, field_name: str, options: tuple[tuple[str, str], ...], shape: str
) -> SecretReference:
    mount, slash, secret_path = path.partition("/")
    names = {name for name, _ in options}
    if not (mount and slash and secret_path and field_name) or not names <= {"version"}:
        raise _malformed(shape)
    if any(not _VERSION.fullmatch(value) for _, value in options):
        raise _malformed(shape)
    return SecretReference("vault", path, field_name, options)


def _vault_db(
    path: str, field_name: str, options: tuple[tuple[str, str], ...], shape: str
) -> SecretReference:
    mount, creds, role = (*path.split("/", 2), "", "")[:3]
    if not (mount and creds == "creds" and role) or "/" in role or field_name or options:
        raise _malformed(shape)
    return SecretReference("vault-db", path)


def _aws(
    path: str, field_name: str, options: tuple[tuple[str, str], ...], shape: str
) -> SecretReference:
    if len(options) > 1:
        raise _malformed(shape)
    for name, value in options:
        pattern = {"stage": _AWS_LABEL, "version": _AWS_VERSION}.get(name)
        if pattern is None or not pattern.fullmatch(value):
            raise _malformed(shape)
    return SecretReference("aws", path, field_name or None, options)


def _options(query: str, shape: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        if not (name and equals and value):
            raise _malformed(shape)
        pairs.append((name, value))
    if len({name for name, _ in pairs}) != len(pairs):
        raise _malformed(shape)
    return tuple(pairs)


def _malformed(shape: str) -> MalformedReferenceError:
    return MalformedReferenceError(f"malformed secret reference: expected {shape}")
