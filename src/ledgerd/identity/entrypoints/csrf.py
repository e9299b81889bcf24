"""CSRF protection for the login form: a double-submit cookie with an HMAC-signed form token.

The form's GET sets a random, HttpOnly, SameSite=Strict cookie and puts in the form a token that
is an HMAC (under the server's key) of that cookie and an expiry. The POST is accepted only when
its cookie and token agree and the token has not expired. Another site can make a browser post
the form, but it can neither read our cookie nor compute a token for it without the key, so it
cannot make a browser sign in (and approve a client) on its behalf.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Final

COOKIE_NAME: Final = "ledgerd_csrf"
# How long a rendered form stays usable: long enough to type a password, no longer.
FORM_LIFETIME: Final = timedelta(minutes=10)
_COOKIE_VALUE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_TOKEN: Final = re.compile(r"(\d{1,12})\.([A-Za-z0-9_-]{43})")


class CsrfGuard:
    def __init__(self, key: bytes, now_s: Callable[[], float]) -> None:
        if len(key) < 32:  # noqa: PLR2004 - 256 bits
            msg = "the CSRF key needs at least 32 bytes"
            raise ValueError(msg)
        self._key, self._now_s = key, now_s

    def cookie_value(self, presented: str | None) -> str:
        """The browser's cookie value if it has a well-formed one, else a new random one."""
        if presented is not None and _COOKIE_VALUE.fullmatch(presented):
            return presented
        return secrets.token_urlsafe(32)

    def form_token(self, cookie_value: str) -> str:
        expires = int(self._now_s() + FORM_LIFETIME.total_seconds())
        return f"{expires}.{self._mac(cookie_value, expires)}"

    def accepts(self, cookie_value: str | None, form_token: str | None) -> bool:
        if cookie_value is None or form_token is None:
            return False
        matched = _TOKEN.fullmatch(form_token)
        if matched is None or not _COOKIE_VALUE.fullmatch(cookie_value):
            return False
        expires = int(matched[1])
        if expires <= self._now_s():
            return False
        return hmac.compare_digest(matched[2], self._mac(cookie_value, expires))

    def _mac(self, cookie_value: str, expires: int) -> str:
        message = f"{cookie_value}.{expires}".encode("ascii")
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
