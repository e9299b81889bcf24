"""The OAuth2 endpoints as one ASGI app, served beside the REST gateway by ``ledgerd serve``.

- ``POST /oauth2/token``: client credentials, authorization code (PKCE S256), refresh token;
- ``GET``/``POST /oauth2/authorize``: the login form, then a redirect with a code;
- ``POST /oauth2/revoke``: RFC 7009;
- ``GET /.well-known/oauth-authorization-server`` (RFC 8414) and ``/.well-known/jwks.json``.

Thin: each handler reads the request strictly (`forms`, `client_auth`), calls a use case and
renders its answer or its refusal the RFCs' way (`oauth_errors`, `login_page`). Failed client and
user authentications are limited (`failure_limits`). The access log names method, path and
status only: query strings and bodies carry codes, secrets and tokens.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.responses import JSONResponse, RedirectResponse, Response

from ledgerd.identity.application.authenticate_client import ClientCredentials
from ledgerd.identity.application.authenticate_user import AuthenticateUser, UserCredentials
from ledgerd.identity.application.authorization_request import (
    AuthorizationParameters,
    AuthorizationRequest,
    CheckAuthorizationRequest,
)
from ledgerd.identity.application.client_credentials import (
    ClientCredentialsRequest,
    IssueClientCredentialsToken,
)
from ledgerd.identity.application.exchange_authorization_code import (
    CodeExchangeRequest,
    ExchangeAuthorizationCode,
)
from ledgerd.identity.application.issue_authorization_code import IssueAuthorizationCode
from ledgerd.identity.application.refresh_tokens import RefreshRequest, RefreshTokens
from ledgerd.identity.application.revoke_token import RevocationRequest, RevokeToken
from ledgerd.identity.application.token_response import TokenResponse
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.entrypoints.client_auth import PresentedClient, presented_client
from ledgerd.identity.entrypoints.csrf import COOKIE_NAME, FORM_LIFETIME, CsrfGuard
from ledgerd.identity.entrypoints.failure_limits import FailureLimiter
from ledgerd.identity.entrypoints.forms import MAX_FORM_BYTES, FormError, parse_form
from ledgerd.identity.entrypoints.login_page import error_page, login_form
from ledgerd.identity.entrypoints.metadata import (
    AUTHORIZE_PATH,
    JWKS_PATH,
    METADATA_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    authorization_server_metadata,
)
from ledgerd.identity.entrypoints.oauth_errors import (
    AUTHORIZATION_ERRORS,
    NO_STORE,
    OAuthError,
    invalid_client,
    invalid_request,
    token_error,
)
from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import RETRY_AFTER_DETAIL, ErrorCode, LedgerdError
from ledgerd.platform.auth.keys import KeyRing

log = logging.getLogger("ledgerd.access")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"
# Verifiers may cache the key set this long; a rotated-in key signs at once, so a verifier that
# meets an unknown kid should fetch again rather than wait (RFC 7517 has no rule; this is ours).
JWKS_MAX_AGE_S: Final = 60
_OUTAGES: Final = frozenset(
    {ErrorCode.UNAVAILABLE, ErrorCode.OVERLOADED, ErrorCode.DEADLINE_EXCEEDED}
)
_AUTHORIZATION_PARAMETERS: Final = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


@dataclass(frozen=True, slots=True)
class OAuthUseCases:
    client_credentials: IssueClientCredentialsToken
    exchange_code: ExchangeAuthorizationCode
    refresh: RefreshTokens
    revoke: RevokeToken
    check_authorization: CheckAuthorizationRequest
    authenticate_user: AuthenticateUser
    issue_code: IssueAuthorizationCode


@dataclass(frozen=True, slots=True)
class OAuthHttpSettings:
    # The origin the endpoints are served under (https://host[:port]), the tokens' ``iss``.
    issuer: str
    # The key of the login form's CSRF tokens: 32 random bytes or more, kept secret.
    csrf_key: bytes

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer)
        if (
            parts.scheme not in {"https", "http"}
            or not parts.netloc
            or self.issuer != (f"{parts.scheme}://{parts.netloc}")
        ):
            msg = "the issuer must be an origin: scheme://host[:port], no path, no slash"
            raise ValueError(msg)


_GrantHandler = Callable[[PresentedClient, Mapping[str, str]], Awaitable[TokenResponse]]


class _Request:
    """What a handler needs of an HTTP request: method, headers, body, source address."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.method: str = scope["method"]
        self.query: bytes = scope.get("query_string", b"")
        self.secure = scope.get("scheme") == "https"
        client = scope.get("client")
        self.address: str = client[0] if client else "unknown"
        self._headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        self._receive = receive

    def header(self, name: str) -> str | None:
        """The one value of header ``name``; a repeated one is refused (which is meant?)."""
        values = [value for key, value in self._headers if key.decode("latin-1").lower() == name]
        if len(values) > 1:
            raise invalid_request(f"header {name} is repeated")
        if not values:
            return None
        try:
            return values[0].decode("ascii")
        except UnicodeDecodeError:
            raise invalid_request(f"header {name} is not ASCII") from None

    def cookie(self, name: str) -> str | None:
        # HTTP/2 may split the cookies over several headers (RFC 9113 §8.2.3): one string again.
        crumbs = [value for key, value in self._headers if key.lower() == b"cookie"]
        if not crumbs:
            return None
        text = b"; ".join(crumbs).decode("latin-1")
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(text)
        except Exception:  # noqa: BLE001 - http.cookies raises CookieError and others
            return None
        morsel = jar.get(name)
        return None if morsel is None else morsel.value

    async def form(self, *, text: bool = False) -> Mapping[str, str]:
        media_type = (self.header("content-type") or "").split(";", 1)[0].strip().lower()
        if media_type != FORM_MEDIA_TYPE:
            raise invalid_request(f"the body must be {FORM_MEDIA_TYPE}")
        length = self.header("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
            raise invalid_request("the body is too large")
        body = bytearray()
        more = True
        while more:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise invalid_request("the client went away")
            body += message.get("body", b"")
            if len(body) > MAX_FORM_BYTES:
                raise invalid_request("the body is too large")
            more = message.get("more_body", False)
        try:
            return parse_form(bytes(body), text=text)
        except FormError as error:
            raise invalid_request(str(error)) from None


class OAuthHttpApp:
    def __init__(  # noqa: PLR0913 - the app's collaborators, each named
        self,
        *,
        use_cases: OAuthUseCases,
        settings: OAuthHttpSettings,
        keys: KeyRing,
        clock: Clock,
        client_failures: FailureLimiter,
        user_failures: FailureLimiter,
        wall_clock_s: Callable[[], float] = time.time,
    ) -> None:
        self._use_cases, self._settings, self._keys, self._clock = use_cases, settings, keys, clock
        self._client_failures, self._user_failures = client_failures, user_failures
        self._csrf = CsrfGuard(settings.csrf_key, wall_clock_s)
        self._metadata = authorization_server_metadata(settings.issuer)
        self._routes: dict[str, dict[str, Callable[[_Request], Awaitable[Response]]]] = {
            TOKEN_PATH: {"POST": self._token},
            REVOKE_PATH: {"POST": self._revoke},
            AUTHORIZE_PATH: {"GET": self._authorize_form, "POST": self._authorize_submit},
            METADATA_PATH: {"GET": self._server_metadata},
            JWKS_PATH: {"GET": self._jwks},
        }
        self._grants: dict[str, _GrantHandler] = {
            "client_credentials": self._client_credentials,
            "authorization_code": self._authorization_code,
            "refresh_token": self._refresh_token,
        }

    @property
    def paths(self) -> frozenset[str]:
        """The paths this app answers; ``main/`` routes them here."""
        return frozenset(self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request = _Request(scope, receive)
        try:
            response = await self._answer(scope["path"], request)
        except Exception as error:  # noqa: BLE001 - a bug must still get an RFC-shaped answer
            # The type only, no traceback: a message could quote what the request carried.
            log.error(  # noqa: TRY400
                "oauth %s %s failed: %s", request.method, scope["path"], type(error).__name__
            )
            response = OAuthError("server_error", "internal error", 500).response()
        await response(scope, receive, send)
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.info(
            "oauth %s %s %d %.1fms",
            request.method,
            scope["path"],
            response.status_code,
            elapsed_ms,
        )

    async def _answer(self, path: str, request: _Request) -> Response:
        methods = self._routes.get(path)
        if methods is None:
            return JSONResponse({"error": "not_found"}, 404, headers=dict(NO_STORE))
        handler = methods.get(request.method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            refusal = OAuthError("invalid_request", "method not allowed", 405, {"allow": allowed})
            return refusal.response()
        try:
            return await handler(request)
        except OAuthError as error:
            return error.response()
        except LedgerdError as error:
            if error.code not in _OUTAGES:
                raise
            # The database is out of reach or overloaded: nothing was issued; try again.
            retry = str(math.ceil(float(error.details.get(RETRY_AFTER_DETAIL, "1"))))
            unavailable = OAuthError(
                "temporarily_unavailable", "try again shortly", 503, {"retry-after": retry}
            )
            return unavailable.response()

    # ------------------------------------------------------------------ token endpoint

    async def _token(self, request: _Request) -> Response:
        form = await request.form()
        client = presented_client(request.header("authorization"), form)
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise invalid_request("grant_type is required")
        handler = self._grants.get(grant_type)
        if handler is None:
            raise OAuthError("unsupported_grant_type", "the grant type is not supported")
        keys = self._client_keys(client, request)
        self._refuse_if_limited(self._client_failures, keys)
        try:
            tokens = await handler(client, form)
        except LedgerdError as error:
            if error.code is IdentityErrorCode.INVALID_CLIENT:
                self._client_failures.record_failure(keys)
            raise token_error(error, basic_used=client.basic_used) from None
        return self._token_response(tokens)

    async def _client_credentials(
        self, client: PresentedClient, form: Mapping[str, str]
    ) -> TokenResponse:
        return await self._use_cases.client_credentials(
            ClientCredentialsRequest(_credentials(client), form.get("scope"))
        )

    async def _authorization_code(
        self, client: PresentedClient, form: Mapping[str, str]
    ) -> TokenResponse:
        code, redirect_uri = _required(form, "code"), _required(form, "redirect_uri")
        verifier = _required(form, "code_verifier")
        return await self._use_cases.exchange_code(
            CodeExchangeRequest(client.identification, code, redirect_uri, verifier)
        )

    async def _refresh_token(
        self, client: PresentedClient, form: Mapping[str, str]
    ) -> TokenResponse:
        refresh_token = _required(form, "refresh_token")
        # A public client names itself with client_id (RFC 6749 §6, §3.2.1), as at the exchange.
        return await self._use_cases.refresh(
            RefreshRequest(client.identification, refresh_token, form.get("scope"))
        )

    def _token_response(self, tokens: TokenResponse) -> Response:
        expires_in = math.floor((tokens.expires_at - self._clock.now()).total_seconds())
        body: dict[str, Any] = {
            "access_token": tokens.access_token,
            "token_type": "Bearer",
            "expires_in": max(0, expires_in),
            "scope": " ".join(sorted(tokens.scopes)),
        }
        if tokens.refresh_token is not None:
            body["refresh_token"] = tokens.refresh_token
        return JSONResponse(body, headers=dict(NO_STORE))

    # ------------------------------------------------------------------ revocation

    async def _revoke(self, request: _Request) -> Response:
        form = await request.form()
        client = presented_client(request.header("authorization"), form)
        token = _required(form, "token")
        # RFC 7009 §2.1: token_type_hint is only a hint, and every token is looked up the same
        # way, so it is ignored whatever it says.
        keys = self._client_keys(client, request)
        self._refuse_if_limited(self._client_failures, keys)
        try:
            await self._use_cases.revoke(RevocationRequest(client.identification, token))
        except LedgerdError as error:
            if error.code is IdentityErrorCode.INVALID_CLIENT:
                self._client_failures.record_failure(keys)
            raise token_error(error, basic_used=client.basic_used) from None
        return Response(status_code=200, headers=dict(NO_STORE))

    # ------------------------------------------------------------------ authorization

    async def _authorize_form(self, request: _Request) -> Response:
        try:
            parameters = parse_form(request.query)
        except FormError as error:
            return error_page(f"The request is malformed: {error}.")
        checked = await self._checked_authorization(parameters)
        if isinstance(checked, Response):
            return checked
        cookie = self._csrf.cookie_value(request.cookie(COOKIE_NAME))
        response = self._login_form(checked, parameters, cookie)
        response.set_cookie(
            COOKIE_NAME,
            cookie,
            max_age=int(FORM_LIFETIME.total_seconds()),
            path=AUTHORIZE_PATH,
            secure=request.secure,
            httponly=True,
            samesite="strict",
        )
        return response

    async def _authorize_submit(self, request: _Request) -> Response:
        try:
            form = await request.form(text=True)
        except OAuthError as error:
            return error_page(f"The request is malformed: {error.description}.")
        if not self._csrf.accepts(request.cookie(COOKIE_NAME), form.get("csrf_token")):
            return error_page("The form expired or did not come from this server.", 403)
        checked = await self._checked_authorization(form)
        if isinstance(checked, Response):
            return checked
        if form.get("decision") != "allow":
            return self._redirect_error(checked, "access_denied", "the user declined")
        return await self._sign_in(request, checked, form)

    async def _sign_in(
        self, request: _Request, checked: AuthorizationRequest, form: Mapping[str, str]
    ) -> Response:
        """The user's credentials checked, then a code sent to the client's redirect URI."""
        username, password = form.get("username"), form.get("password")
        keys = (f"user:{username or ''}", f"address:{request.address}")
        cookie = request.cookie(COOKIE_NAME) or ""
        wait = self._user_failures.retry_after(keys)
        if wait is not None:
            return self._login_form(
                checked,
                form,
                cookie,
                message=f"Too many failed sign-ins. Try again in {wait} s.",
                status=429,
                headers={"retry-after": str(wait)},
            )
        try:
            user = await self._use_cases.authenticate_user(
                UserCredentials(username or "", password or "")
            )
        except LedgerdError as error:
            if error.code is not IdentityErrorCode.ACCESS_DENIED:
                raise
            self._user_failures.record_failure(keys)
            return self._login_form(
                checked, form, cookie, message="Wrong username or password.", status=403
            )
        try:
            code = await self._use_cases.issue_code(checked, user)
        except LedgerdError as error:
            if error.code not in AUTHORIZATION_ERRORS:
                raise
            return self._redirect_error(checked, AUTHORIZATION_ERRORS[error.code], error.message)
        return self._redirect(checked, {"code": code})

    async def _checked_authorization(
        self, parameters: Mapping[str, str]
    ) -> AuthorizationRequest | Response:
        try:
            return await self._use_cases.check_authorization(
                AuthorizationParameters(
                    client_id=parameters.get("client_id"),
                    redirect_uri=parameters.get("redirect_uri"),
                    response_type=parameters.get("response_type"),
                    code_challenge=parameters.get("code_challenge"),
                    code_challenge_method=parameters.get("code_challenge_method"),
                    scope=parameters.get("scope"),
                    state=parameters.get("state"),
                )
            )
        except LedgerdError as error:
            if error.code is IdentityErrorCode.INVALID_REDIRECT_URI:
                return error_page("The application or its redirect URI is not registered here.")
            redirect_uri = parameters.get("redirect_uri", "")
            if error.code not in AUTHORIZATION_ERRORS:
                raise
            # The URI was checked good before any of these errors can arise.
            query = {"error": AUTHORIZATION_ERRORS[error.code], "error_description": error.message}
            return self._redirect_to(redirect_uri, query, parameters.get("state"))

    def _login_form(  # noqa: PLR0913 - the form's contents, each named
        self,
        checked: AuthorizationRequest,
        parameters: Mapping[str, str],
        cookie: str,
        *,
        message: str | None = None,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        carried = {
            name: parameters[name] for name in _AUTHORIZATION_PARAMETERS if name in parameters
        }
        carried["csrf_token"] = self._csrf.form_token(cookie)
        scopes = checked.scopes if checked.scopes is not None else checked.client.grant.scopes
        return login_form(
            client_name=checked.client.name,
            scopes=scopes,
            carried=carried,
            message=message,
            status=status,
            headers=headers,
        )

    def _redirect_error(
        self, checked: AuthorizationRequest, error: str, description: str
    ) -> Response:
        return self._redirect(checked, {"error": error, "error_description": description})

    def _redirect(self, checked: AuthorizationRequest, query: Mapping[str, str]) -> Response:
        return self._redirect_to(checked.redirect_uri, query, checked.state)

    def _redirect_to(
        self, redirect_uri: str, query: Mapping[str, str], state: str | None
    ) -> Response:
        # RFC 6749 §4.1.2: state exactly as received; RFC 9207: iss names this server.
        answer = {
            **query,
            **({"state": state} if state is not None else {}),
            "iss": self._settings.issuer,
        }
        parts = urlsplit(redirect_uri)
        joined = "&".join(part for part in (parts.query, urlencode(answer)) if part)
        location = urlunsplit((parts.scheme, parts.netloc, parts.path, joined, ""))
        return RedirectResponse(location, 303, headers={"cache-control": "no-store"})

    # ------------------------------------------------------------------ well-known

    async def _server_metadata(self, _request: _Request) -> Response:
        return JSONResponse(self._metadata, headers={"cache-control": "max-age=3600"})

    async def _jwks(self, _request: _Request) -> Response:
        key_set = self._keys.key_set.jwks(self._clock.now())
        return JSONResponse(key_set, headers={"cache-control": f"max-age={JWKS_MAX_AGE_S}"})

    # ------------------------------------------------------------------ limits

    @staticmethod
    def _client_keys(client: PresentedClient, request: _Request) -> tuple[str, ...]:
        return (f"client:{client.identification.client_id}", f"address:{request.address}")

    @staticmethod
    def _refuse_if_limited(limiter: FailureLimiter, keys: tuple[str, ...]) -> None:
        wait = limiter.retry_after(keys)
        if wait is not None:
            raise OAuthError(
                "temporarily_unavailable",
                "too many failed authentications; retry later",
                429,
                {"retry-after": str(wait)},
            )


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise invalid_request(f"{name} is required")
    return value


def _credentials(client: PresentedClient) -> ClientCredentials:
    """A confidential client's credentials: client_credentials is not for public clients."""
    secret = client.identification.secret
    if secret is None:
        raise invalid_client(basic_used=client.basic_used)
    return ClientCredentials(client.identification.client_id, secret)
