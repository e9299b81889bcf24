"""An httpx transport that connects only to the addresses the ``AddressPolicy`` allows.

The check is made where it cannot be got around: when a connection is opened, against the very
address connected to. The host is resolved once, here; if *any* of its addresses is not
allowed the connection is refused, else the socket is opened to one of the addresses just
checked (the IP, not the name, so the name is not resolved again: a DNS answer that changes
between the check and the connection, "DNS rebinding", changes nothing). TLS still verifies the
certificate against the URL's host name: httpcore sends the origin's host as SNI and checks the
certificate against it, whatever address the socket was opened to (a test delivers to a receiver
whose certificate names ``localhost`` alone, reached on 127.0.0.1, and is refused by one naming
another host: tests/integration/webhooks/test_tls_receivers.py).

Why refuse the whole name rather than connect to its allowed addresses only: a name that
resolves to a public address and an internal one at once is either a misconfiguration or a
probe, and skipping the internal one would make a delivery succeed or fail depending on which
addresses the resolver returned that time; refused, the attempt's error says which address
and why, every time.

The seam: httpcore's connection pool takes a network backend (``connect_tcp``), and httpx takes
any transport (``httpx.AsyncBaseTransport``); httpx's own ``AsyncHTTPTransport`` offers no way
to pass a backend to the pool it builds. So this module builds the pool (with the TLS context
it is given: ``http_sender.py``'s) on the guarded backend and is the transport over it, as
httpx's is: the request mapped to httpcore's, httpcore's errors to httpx's.

Imported only by ``HttpWebhookSender.__init__`` (httpx's import cost, see http_sender.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import typing
from collections.abc import AsyncIterator, Iterable, Iterator

import httpcore
import httpx

from ledgerd.webhooks.domain.addresses import Address, AddressPolicy

# httpcore's type of a socket option (``setsockopt``'s arguments).
SocketOption: typing.TypeAlias = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class AddressRefusedError(httpcore.ConnectError):
    """The host resolves to an address the policy does not allow: nothing was connected to."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's asyncio backend, connecting only to addresses ``policy`` allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        for address in addresses:
            refused = self._policy.refusal(address)
            if refused is not None:
                raise AddressRefusedError("refused: " + refused)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error  # the next address, as a resolver's list is meant to be tried
        assert failure is not None  # noqa: S101 - _resolve returns at least one address
        raise failure

    # connect_unix_socket: the base's (not implemented): the pool is given no socket path.

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


async def _resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to for TCP, in the resolver's order, without repeats."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError) as error:
        raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
    addresses: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in found:
        with contextlib.suppress(ValueError):  # a family with no IP address: not ours to use
            address = ipaddress.ip_address(str(sockaddr[0]))
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        msg = f"cannot resolve {host}: no IP address"
        raise httpcore.ConnectError(msg)
    return addresses


# httpcore's errors as httpx's (a subclass before its base): what httpx's own transport does.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        for theirs, ours in _ERRORS:
            if isinstance(error, theirs):
                raise ours(str(error)) from error
        raise


class _Answer(httpx.AsyncByteStream):
    def __init__(self, stream: typing.AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        closing = getattr(self._stream, "aclose", None)
        if closing is not None:
            with _as_httpx_errors():
                await closing()


class GuardedTransport(httpx.AsyncBaseTransport):
    """A connection pool on ``GuardedBackend``, as an httpx transport."""

    def __init__(
        self, policy: AddressPolicy, limits: httpx.Limits, ssl_context: ssl.SSLContext
    ) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)  # noqa: S101 - an async client's
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            answer = await self._pool.handle_async_request(core_request)
        assert isinstance(answer.stream, typing.AsyncIterable)  # noqa: S101 - an async pool's
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Answer(answer.stream),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
