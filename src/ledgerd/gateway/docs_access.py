"""The docs page's access token: a field to paste one into, and example requests that send it.

Each operation gets a curl line. Without JavaScript it names shell variables (``$LEDGERD_URL``,
``$TOKEN``) the reader sets; with it, one small inline script fills in the page's own origin and
the token pasted into the field. The token stays in the page: kept in the tab's
``sessionStorage`` (gone when the tab closes) so it survives a reload, shown only in the curl
lines, and sent nowhere — the page's Content-Security-Policy (:func:`content_security_policy`)
allows it no connection, form submission or resource from anywhere, so even a bug in the
script could not send it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from html import escape
from typing import Any

TOKEN_FIELD_ID = "access-token"  # noqa: S105 - an element's id, not a credential
TOKEN_VARIABLE = "$TOKEN"  # noqa: S105 - a shell variable's name, not a credential
BASE_URL_VARIABLE = "$LEDGERD_URL"

# Fills the curl lines in. A token is shown only if it looks like one (a JWT's base64url
# segments and dots, or an opaque token's characters): pasted text that could end the shell
# string it lands in is never put into a line the reader copies into a shell. textContent,
# never innerHTML: nothing pasted is parsed as HTML.
_SCRIPT = """
(function () {
  var field = document.getElementById("access-token");
  var key = "ledgerd.docs.access-token";
  var shape = /^[A-Za-z0-9._~+\\/=-]+$/;
  function fill(selector, text) {
    document.querySelectorAll(selector).forEach(function (node) { node.textContent = text; });
  }
  function show() {
    var token = field.value.trim();
    fill(".token", shape.test(token) ? token : "$TOKEN");
  }
  try { field.value = sessionStorage.getItem(key) || ""; } catch (error) { field.value = ""; }
  field.addEventListener("input", function () {
    try {
      if (field.value) { sessionStorage.setItem(key, field.value); }
      else { sessionStorage.removeItem(key); }
    } catch (error) { /* storage refused: the token lives in the field alone */ }
    show();
  });
  if (/^https?:$/.test(location.protocol)) { fill(".base-url", location.origin); }
  show();
})();
"""


def content_security_policy() -> str:
    """The page's policy: its own inline style and this one script, nothing else at all."""
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; connect-src 'none'; form-action 'none'; "
        "base-uri 'none'"
    )


def token_section(document: Mapping[str, Any]) -> str:
    """The field to paste a token into, if the document's API takes tokens; else nothing."""
    schemes = document.get("components", {}).get("securitySchemes", {})
    if not schemes:
        return ""
    return (
        "<section><h2 id='access-token-section'>Access token</h2>"
        f"<p><label for='{TOKEN_FIELD_ID}'>Paste an access token</label> "
        f"<input id='{TOKEN_FIELD_ID}' type='password' autocomplete='off' spellcheck='false' "
        "size='60'></p>"
        "<p class='muted'>It fills the example requests below. It is kept only in this tab "
        "(its session storage, cleared when the tab closes) and this page sends it nowhere; "
        f"without it the examples name <code>{TOKEN_VARIABLE}</code>. Get one from "
        "<code>POST /oauth2/token</code> (see the <code>oauth2</code> security scheme).</p>"
        f"</section><script>{_SCRIPT}</script>"
    )


def example_request(path: str, method: str, operation: Mapping[str, Any]) -> str:
    """The operation as a curl line, with the token if it needs one."""
    url = f"<span class='base-url'>{BASE_URL_VARIABLE}</span>{escape(path)}"
    lines = [f'curl -X {escape(method.upper())} "{url}"']
    if operation.get("security"):
        lines.append(f"-H \"Authorization: Bearer <span class='token'>{TOKEN_VARIABLE}</span>\"")
    body = _body_example(operation)
    if body is not None:
        lines.append("-H 'Content-Type: application/json'")
        lines.append("-d " + escape(_shell_quoted(body)))
    return (
        "<p class='muted'>Example request</p><pre><code>" + " \\\n  ".join(lines) + "</code></pre>"
    )


def _body_example(operation: Mapping[str, Any]) -> str | None:
    content = operation.get("requestBody", {}).get("content", {})
    for media in content.values():
        if "example" in media:
            return json.dumps(media["example"], ensure_ascii=False, separators=(",", ":"))
    return None


def _shell_quoted(text: str) -> str:
    """``text`` in single quotes, each quote in it ended, escaped and reopened."""
    return "'" + text.replace("'", "'\\''") + "'"
