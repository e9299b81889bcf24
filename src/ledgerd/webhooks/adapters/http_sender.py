"""The webhook sender on httpx: one POST, bounded in time, its outcome never an exception.

- The whole request (connecting, sending, waiting for and reading the answer) must end within
  the timeout (``LEDGERD_WEBHOOKS_TIMEOUT_SECONDS``): httpx bounds each phase on its own, so a
  receiver trickling its answer a byte at a time could otherwise hold an attempt for ever.
- Redirects are not followed: a 3xx is an answer that is not 2xx, a failure. The endpoint's
  URL is the one registered, and a signed event does not go anywhere else.
- The answer's body is read (so the connection can be reused) up to a small limit and thrown
  away: a receiver says "got it" with its status, not with what it writes.
- One client (one connection pool) serves every endpoint, with as many connections as
  attempts may be in flight.
- It connects only to the addresses the ``AddressPolicy`` allows (public ones, and the networks
  of ``LEDGERD_WEBHOOKS_ALLOWED_NETWORKS``), checked when each connection is opened against the
  address connected to (``guarded_transport.py``); a refusal is a failed attempt like a refused
  connection, its error ``refused: 10.0.0.5 is not a public address (...)``.
- An https URL's certificate must chain to certifi's public roots or to a CA of
  ``trusted_cas`` (``LEDGERD_WEBHOOKS_CA_FILE``: added to the public roots, not instead of
  them), and name the URL's host (checked by httpcore against the host, not the address
  connected to). The environment's ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` are not used, as its
  proxies are not: what deliveries trust is the settings' to say, the same on every host.

httpx is imported where it is used, not with this module: the composition root imports the
module for every ``ledgerd`` command, and httpx's import (~0.15 s, its own command line's rich
and pygments included) is for the processes that deliver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ledgerd.webhooks.domain.addresses import AddressPolicy
from ledgerd.webhooks.domain.deliveries import Response

if TYPE_CHECKING:
    import ssl

    import httpx

# The delivery format's version (docs/webhooks.md), not the program's: receivers may key on it.
USER_AGENT = "ledgerd-webhooks/1"
# What is read of an answer's body before the connection is dropped instead of reused.
_MAX_ANSWER_BYTES = 64 * 1024


class HttpWebhookSender:
    def __init__(
        self,
        *,
        timeout_s: float,
        max_connections: int,
        addresses: AddressPolicy,
        trusted_cas: bytes | None = None,
    ) -> None:
        """``trusted_cas``: PEM certificates trusted besides the public roots (checked already)."""
        import httpx  # noqa: PLC0415 - see the module's docstring

        from ledgerd.webhooks.adapters.guarded_transport import GuardedTransport  # noqa: PLC0415

        self._timeout_s = timeout_s
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            transport=GuardedTransport(addresses, limits, delivery_tls_context(trusted_cas)),
            headers={"User-Agent": USER_AGENT},
            # The environment's proxies are for this host's own traffic, not a partner's URLs.
            trust_env=False,
        )

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Response:
        import httpx  # noqa: PLC0415 - imported already (by __init__), so only a lookup

        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                status = await self._send(url, headers, body)
        except TimeoutError:
            return Response(None, f"timed out after {self._timeout_s:g} s", _since(started))
        except httpx.HTTPError as error:
            return Response(None, _describe(error), _since(started))
        return Response(status, None, _since(started))

    async def _send(self, url: str, headers: Mapping[str, str], body: bytes) -> int:
        request = self._client.build_request("POST", url, headers=headers, content=body)
        answer = await self._client.send(request, stream=True)
        try:
            read = 0
            async for chunk in answer.aiter_raw():
                read += len(chunk)
                if read > _MAX_ANSWER_BYTES:
                    break
        finally:
            await answer.aclose()
        return answer.status_code

    async def aclose(self) -> None:
        await self._client.aclose()


def delivery_tls_context(trusted_cas: bytes | None) -> ssl.SSLContext:
    """Httpx's verifying client context on certifi's roots, with ``trusted_cas`` added.

    ``trusted_cas``: PEM, one certificate or more (other blocks, text between them: skipped).
    """
    import httpx  # noqa: PLC0415 - see the module's docstring

    context = httpx.create_ssl_context(trust_env=False)
    if trusted_cas is not None:
        # Added to the store: the public roots stay. As DER, because ``ssl`` takes PEM only as
        # an ASCII string, and a bundle's comments between certificates need not be ASCII.
        certificates = x509.load_pem_x509_certificates(trusted_cas)
        context.load_verify_locations(
            cadata=b"".join(each.public_bytes(Encoding.DER) for each in certificates)
        )
    return context


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _describe(error: httpx.HTTPError) -> str:
    """``ConnectError: [Errno 111] Connection refused``: the kind of failure, then its detail."""
    import httpx  # noqa: PLC0415 - imported already (by __init__), so only a lookup

    from ledgerd.webhooks.adapters.guarded_transport import AddressRefusedError  # noqa: PLC0415

    if isinstance(error.__cause__, AddressRefusedError):
        return str(error.__cause__)  # "refused: 10.0.0.5 is not a public address (...)"
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    detail = str(error) or repr(error.__cause__ or error)
    return f"{type(error).__name__}: {detail}"
