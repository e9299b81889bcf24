"""The blocking gRPC plumbing every client command of a running ``ledgerd serve`` shares.

Every call has a deadline, so a command never hangs on a server that does not answer; every
call carries the access token, when there is one (``authorization: Bearer …``); every
failure becomes a :class:`ClientError`: one line to print and the exit code it deserves.
The channel is TLS, and mTLS, when ``LEDGERD_GRPC_SERVER_CA`` and
``LEDGERD_GRPC_CLIENT_CERT_FILE`` say so, as for ``serve``'s own gRPC client.
Listings follow ``next_page_token`` until the end, or until ``limit`` items. A context's client
wraps its service's stub around an :class:`ApiChannel` (the ledger's:
``main/contexts/ledger_api_client.py``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_status import rpc_status

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.paging import MAX_PAGE_SIZE
from ledgerd.platform.api.grpc_errors import error_of
from ledgerd.platform.tls.certificate_files import CertificateFileError
from ledgerd.platform.tls.channel_credentials import (
    CLIENT_CERT_SETTING,
    CLIENT_KEY_SETTING,
    SERVER_CA_SETTING,
    client_channel_credentials,
)

# The address the client commands call, and the variable that sets it. Not
# LEDGERD_GRPC_ADDRESS: that is where `serve` listens, which need not be where a client
# reaches it (0.0.0.0, a port picked at start-up, a proxy in between).
SERVER_VARIABLE = "LEDGERD_SERVER"
# The access token every call carries; unset, calls carry none (a server with auth off).
TOKEN_VARIABLE = "LEDGERD_TOKEN"  # noqa: S105 - the variable's name, not a token
DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 5.0
_MAX_PORT = 65_535

# A mistake in the arguments or something missing (a ledger, an account): not worth retrying.
EXIT_ERROR = 2
# The server could not be reached, or could not serve the call now: worth retrying.
EXIT_UNREACHABLE = 3
# The server failed the call for another reason (a bug, a server of another version).
EXIT_FAILED = 1

# Codes that say "try again later", whichever part of the server they come from.
_RETRYABLE = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.OVERLOADED, ErrorCode.DEADLINE_EXCEEDED})
_WHERE = f"--server or {SERVER_VARIABLE}"
_TOKEN_WHERE = f"--token or {TOKEN_VARIABLE}"
# RFC 6750's b64token, what a server accepts after "Bearer ": anything else (a pasted
# "Bearer …", a stray newline) is refused here, before gRPC sees it, so that no error of
# gRPC's own can quote it.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# The detail naming the scope a refused call needed: SCOPE_DETAIL of
# platform/api/authentication.py, not imported here as it would load the JOSE library too.
_SCOPE_DETAIL = "scope"
_HOW_TO_AUTHENTICATE = (
    "`ledgerd serve --demo` prints one as `export LEDGERD_TOKEN=…`; or POST /oauth2/token "
    "with a client's credentials (`ledgerd clients create`, docs/security.md)"
)


class ClientError(Exception):
    """A call that failed: ``line`` says why in one line; ``exit_code`` is the command's."""

    def __init__(self, line: str, exit_code: int) -> None:
        super().__init__(line)
        self.line = line
        self.exit_code = exit_code


def check_server(address: str) -> str:
    """``address`` if it is HOST:PORT, else a ClientError naming the option and variable."""
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) <= _MAX_PORT:
        line = f"error: {_WHERE}: {address!r} is not HOST:PORT (e.g. {DEFAULT_SERVER})"
        raise ClientError(line, EXIT_ERROR)
    return address


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata every call carries: ``authorization: Bearer TOKEN``, or none without one.

    A token that is no token is a ClientError that never quotes it: it is a credential.
    """
    if not token:
        return ()
    if _B64TOKEN.fullmatch(token) is None:
        line = (
            f"error: {_TOKEN_WHERE}: not an access token (the token alone, without "
            "`Bearer `, as /oauth2/token's access_token gives it)"
        )
        raise ClientError(line, EXIT_ERROR)
    return (("authorization", f"Bearer {token}"),)


_Item = TypeVar("_Item", bound=Message)
_Request = TypeVar("_Request", bound=Message)
_Response = TypeVar("_Response", bound=Message)


@dataclass(frozen=True, slots=True)
class Listing(Generic[_Item]):
    """What a listing gathered, and the token of what follows (empty: nothing more)."""

    items: Sequence[_Item]
    next_page_token: str


class ApiChannel:
    """One channel to the server, and calls over it; see :func:`connect`."""

    def __init__(
        self,
        channel: grpc.Channel,
        server: str,
        timeout_s: float,
        page_size: int = MAX_PAGE_SIZE,
        token: str | None = None,
    ) -> None:
        self.channel = channel
        # How many items a listing asks for per call.
        self.page_size = page_size
        self._server = server
        self._timeout_s = timeout_s
        self._metadata = bearer_metadata(token)
        self._token = token or None

    def call(
        self, method: grpc.UnaryUnaryMultiCallable[_Request, _Response], request: _Request
    ) -> _Response:
        """The answer to ``request``, within the deadline; a failure is a ClientError."""
        try:
            return method(request, timeout=self._timeout_s, metadata=self._metadata)
        except grpc.RpcError as error:
            raise self._without_token(self._failure(error)) from None

    def stream(
        self, method: grpc.UnaryStreamMultiCallable[_Request, _Response], request: _Request
    ) -> Iterator[_Response]:
        """The messages a server-streaming call sends, for as long as it sends them.

        No deadline: a stream of events stays open until the client stops reading. A failure,
        before the first message or after the last, is a ClientError.
        """
        try:
            yield from method(request, metadata=self._metadata)
        except grpc.RpcError as error:
            raise self._without_token(self._failure(error)) from None

    def _without_token(self, failure: ClientError) -> ClientError:
        """``failure``, its line never quoting the token (a server might, ledgerd does not)."""
        if self._token is None or self._token not in failure.line:
            return failure
        return ClientError(failure.line.replace(self._token, "…"), failure.exit_code)

    def _failure(self, error: grpc.RpcError) -> ClientError:
        code: grpc.StatusCode = error.code()
        details = str(error.details() or "").splitlines()
        message = details[0] if details else code.name
        known = _ledgerd_error(error)
        if known is not None:
            exit_code = EXIT_UNREACHABLE if known.code in _RETRYABLE else EXIT_ERROR
            return ClientError(self._line_of(known), exit_code)
        if code is grpc.StatusCode.UNAVAILABLE:
            line = f"error: cannot reach ledgerd at {self._server} ({_WHERE}): {message}"
            return ClientError(line, EXIT_UNREACHABLE)
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            line = (
                f"error: ledgerd at {self._server} ({_WHERE}) did not answer within "
                f"{self._timeout_s:g} s (--timeout)"
            )
            return ClientError(line, EXIT_UNREACHABLE)
        return ClientError(f"error: {code.name} from {self._server}: {message}", EXIT_FAILED)

    def _line_of(self, known: LedgerdError) -> str:
        """The API's code and message; with what to do about it when it is the access token's."""
        line = f"error {known.code}: {known.message}"
        if known.code == ErrorCode.UNAUTHENTICATED and self._token is None:
            return (
                f"{line}: ledgerd at {self._server} needs an access token ({_TOKEN_WHERE}): "
                f"{_HOW_TO_AUTHENTICATE}"
            )
        if known.code == ErrorCode.UNAUTHENTICATED:
            return f"{line} (the token of {_TOKEN_WHERE}): get a new one: {_HOW_TO_AUTHENTICATE}"
        if known.code == ErrorCode.INSUFFICIENT_SCOPE:
            scope = known.details.get(_SCOPE_DETAIL)
            needed = f"a token granted {scope}" if scope else "a token granted another scope"
            return (
                f"{line} ({_TOKEN_WHERE}): this call needs {needed} (POST /oauth2/token for a "
                "client granted it, `ledgerd clients create --scopes …`)"
            )
        return line


def _ledgerd_error(error: grpc.RpcError) -> LedgerdError | None:
    """The ledgerd error the status carries in its details, if any (docs/api.md, Errors)."""
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:  # details that contradict the status: not a ledgerd server's
        return None
    return None if status is None else error_of(status)


def gather(
    page: Callable[[int, str], tuple[Sequence[_Item], str]], limit: int | None, page_size: int
) -> Listing[_Item]:
    """Pages until the last (or ``limit`` items); each asks for no more than is still wanted.

    So that the last page ends exactly at ``limit``, and its token continues from there.
    """
    items: list[_Item] = []
    token = ""
    while True:
        wanted = page_size if limit is None else min(page_size, limit - len(items))
        found, next_token = page(wanted, token)
        if next_token and next_token == token:
            # The same page again, and again: asked for forever, it would never end.
            line = "error: the server's listing does not move on from one page to the next"
            raise ClientError(line, EXIT_FAILED)
        items.extend(found)
        token = next_token
        if not token or (limit is not None and len(items) >= limit):
            return Listing(items, token)


@contextmanager
def connect(
    server: str, timeout_s: float, page_size: int = MAX_PAGE_SIZE, *, token: str | None = None
) -> Iterator[ApiChannel]:
    """A channel to the ledgerd at ``server`` (HOST:PORT), closed on the way out.

    Every call carries ``token`` (``authorization: Bearer …``), or no credential without one.
    Listings ask for ``page_size`` items a call (the API's largest page unless a test wants
    to see several pages).
    """
    target = check_server(server)
    credentials = environment_credentials(os.environ)
    with (
        grpc.insecure_channel(target)
        if credentials is None
        else grpc.secure_channel(target, credentials)
    ) as channel:
        yield ApiChannel(channel, server, timeout_s, page_size, token)


def environment_credentials(environ: Mapping[str, str]) -> grpc.ChannelCredentials | None:
    """TLS as ``serve``'s own gRPC client does it, from the same variables; None: plaintext.

    ``LEDGERD_GRPC_SERVER_CA`` (the CA the server's certificate is checked against) turns it
    on; ``LEDGERD_GRPC_CLIENT_CERT_FILE`` and ``_KEY_FILE`` add a client certificate (mTLS). A
    file that cannot be used is a ClientError naming its variable.
    """

    def path(variable: str) -> Path | None:
        value = environ.get(variable)
        return Path(value) if value else None

    certificate, key = path(CLIENT_CERT_SETTING), path(CLIENT_KEY_SETTING)
    if (certificate is None) != (key is None):
        line = f"error: {CLIENT_CERT_SETTING} and {CLIENT_KEY_SETTING} go together: set both"
        raise ClientError(line, EXIT_ERROR)
    try:
        return client_channel_credentials(path(SERVER_CA_SETTING), certificate, key)
    except CertificateFileError as error:
        raise ClientError(f"error: {error}", EXIT_ERROR) from None
