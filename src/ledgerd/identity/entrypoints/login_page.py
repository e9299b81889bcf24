"""The authorization endpoint's pages: the login form and the error page. No JavaScript.

Everything shown that came from a request or from storage (a client's name, the parameters
carried in hidden fields) is HTML-escaped; the pages forbid scripts, framing and referrers by
their headers, and are never cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from types import MappingProxyType
from typing import Final

from starlette.responses import HTMLResponse

PAGE_HEADERS: Final = MappingProxyType(
    {
        # No script, no plugin, no external anything; the form posts to this same endpoint.
        # (No form-action: browsers apply it to the redirect after the POST too, which goes to
        # the client's redirect URI.)
        "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
        "frame-ancestors 'none'; base-uri 'none'",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
    }
)

_STYLE: Final = (
    "body{font-family:sans-serif;max-width:26em;margin:3em auto;padding:0 1em}"
    "label{display:block;margin:.8em 0}input[type=text],input[type=password]{width:100%}"
    ".error{color:#a00}"
)


def _page(title: str, body: str, status: int, headers: Mapping[str, str]) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return HTMLResponse(html, status, headers={**PAGE_HEADERS, **headers})


def error_page(message: str, status: int = 400) -> HTMLResponse:
    """An error the user agent is not redirected for: the client or its redirect URI is unknown."""
    body = (
        "<h1>Sign-in request refused</h1>"
        f"<p>{escape(message)}</p>"
        "<p>Return to the application you came from and try again.</p>"
    )
    return _page("Sign-in request refused", body, status, {})


def login_form(  # noqa: PLR0913 - what the form shows and carries, each named
    *,
    client_name: str,
    scopes: Iterable[str],
    carried: Mapping[str, str],
    message: str | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The form; ``carried`` are the hidden fields (the request's parameters, the CSRF token)."""
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in carried.items()
    )
    asked = "".join(f"<li>{escape(scope)}</li>" for scope in sorted(scopes))
    error = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    body = (
        f"<h1>Sign in to ledgerd</h1><p><strong>{escape(client_name)}</strong> asks to act "
        f"for you with these scopes:</p><ul>{asked or '<li>everything you hold</li>'}</ul>"
        f'{error}<form method="post" action="/oauth2/authorize">{hidden}'
        '<label>Username <input type="text" name="username" autocomplete="username" '
        "required></label>"
        '<label>Password <input type="password" name="password" '
        'autocomplete="current-password" required></label>'
        '<button type="submit" name="decision" value="allow">Sign in and allow</button> '
        '<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>'
        "</form>"
    )
    return _page("Sign in to ledgerd", body, status, headers or {})
