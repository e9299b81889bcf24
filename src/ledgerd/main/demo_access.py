"""What ``ledgerd serve --demo`` prints for calling its API: a token and the lines that use it.

With authentication required, a first hour starts with credentials: the demo client (made or
given a new secret, ``identity/application/demo_client.py``) gets a token through the same
client-credentials grant any service uses, and the banner shows it as a shell ``export`` (the
client commands read ``LEDGERD_TOKEN`` too), a ``curl`` line that uses it, and how to get the
next one when it expires. These go to stdout with the rest of the banner, never to the log.
"""

from __future__ import annotations

from dishka import AsyncContainer

from ledgerd.identity.application.authenticate_client import ClientCredentials
from ledgerd.identity.application.client_credentials import (
    ClientCredentialsRequest,
    IssueClientCredentialsToken,
)
from ledgerd.identity.application.demo_client import ProvideDemoClient

TRY_PATH = "/v1/ledgers/{ledger}/accounts/wallet:alice/balance"


async def demo_access_lines(container: AsyncContainer, ledger_id: str, http_base: str) -> list[str]:
    """The banner's lines for calling ``ledger_id`` on the server at ``http_base``."""
    credentials = await (await container.get(ProvideDemoClient))(ledger_id)
    if credentials is None:
        revoked = "the demo client is revoked; make another: `ledgerd clients create`"
        return [f"auth  no token: {revoked}"]
    issue = await container.get(IssueClientCredentialsToken)
    token = await issue(
        ClientCredentialsRequest(ClientCredentials(credentials.client_id, credentials.secret))
    )
    expires = token.expires_at.strftime("%H:%M:%S UTC")
    bearer = '-H "Authorization: Bearer $LEDGERD_TOKEN"'
    login = f"-u {credentials.client_id}:{credentials.secret} -d grant_type=client_credentials"
    grant = f"every scope on ledger '{ledger_id}', until {expires}"
    renew = "a new token, as access_token; the demo client's secret changes with each run"
    return [
        f"auth  a token for the demo client ({grant}); paste this line into your shell:",
        f"export LEDGERD_TOKEN={token.access_token}",
        f"try   curl -s {bearer} {http_base}{TRY_PATH.format(ledger=ledger_id)}",
        f"again curl -s {login} {http_base}/oauth2/token",
        f"      ({renew} of `serve --demo`)",
    ]
