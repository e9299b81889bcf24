"""Find the route for an HTTP request: (method, raw path) → route and path variables.

A path names one resource: the most specific template that matches it (see
:meth:`PathTemplate.specificity`), together with any other template of the same shape. Its
routes are tried in declaration order, so the outcome never depends on dictionary or
registration order. A path that no template matches is :class:`RouteNotFoundError` (404); a
method the resource does not take is :class:`MethodNotAllowedError` (405, with the resource's
methods for the ``Allow`` header), even when a less specific template would take it. So
``.../accounts/a:close`` is the close action's path, POST only, although GetAccount's template
would read it as the account ``a:close``: that account is ``.../accounts/a%3Aclose``, which is
how an OpenAPI client (RFC 6570 expansion) sends the id anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledgerd.gateway.http_rules import HttpRoute
from ledgerd.gateway.path_template import MalformedPathError, check_raw_path

ANY_METHOD = "*"


class RoutingError(Exception):
    """The request reaches no RPC."""


class RouteNotFoundError(RoutingError):
    def __init__(self, raw_path: str) -> None:
        super().__init__(f"no route for {raw_path}")
        self.raw_path = raw_path


class MethodNotAllowedError(RoutingError):
    def __init__(self, http_method: str, raw_path: str, allowed: tuple[str, ...]) -> None:
        self.http_method = http_method
        self.raw_path = raw_path
        self.allowed = allowed
        # What the Allow header lists: HEAD is answered wherever GET is (GET without the body).
        self.answered = tuple(sorted({*allowed, "HEAD"})) if "GET" in allowed else allowed
        super().__init__(
            f"{http_method} is not allowed on {raw_path}; use {_in_words(self.answered)}"
        )


def _in_words(methods: tuple[str, ...]) -> str:
    """``("GET", "HEAD", "POST")`` as "GET, HEAD or POST"."""
    *first, last = methods
    return f"{', '.join(first)} or {last}" if first else last


class BadPathError(RoutingError):
    """The path is not valid percent-encoded UTF-8 (a 400, not a 404)."""


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: HttpRoute
    # Decoded values by dotted field path ("ledger", "sub.subfield").
    path_variables: Mapping[str, str]


class Router:
    def __init__(self, routes: Iterable[HttpRoute]) -> None:
        # sorted() is stable: equally specific templates keep their declaration order.
        self.routes: tuple[HttpRoute, ...] = tuple(
            sorted(routes, key=lambda route: route.template.specificity())
        )
        self._specificities = tuple(route.template.specificity() for route in self.routes)
        seen: set[tuple[str, str]] = set()
        for route in self.routes:
            key = (route.http_method, route.template.text)
            if key in seen:
                msg = f"{route.method.full_name}: {key[0]} {key[1]} is bound twice"
                raise ValueError(msg)
            seen.add(key)

    def match(self, http_method: str, raw_path: str) -> RouteMatch:
        """The route for a request; ``raw_path`` is still percent-encoded, without the query.

        With Starlette/ASGI that is ``scope["raw_path"].decode("latin-1")``, not
        ``scope["path"]``, which is already decoded and would turn ``%2F`` into a separator.
        """
        try:
            check_raw_path(raw_path)
        except MalformedPathError as error:
            raise BadPathError(str(error)) from None
        wanted = http_method.upper()
        allowed: list[str] = []
        resource: object = None  # the specificity of the first template that matched
        for route, specificity in zip(self.routes, self._specificities, strict=True):
            if resource is not None and specificity != resource:
                break  # a less specific template: another resource
            variables = route.template.match(raw_path)
            if variables is None:
                continue
            resource = specificity
            if route.http_method in {wanted, ANY_METHOD}:
                return RouteMatch(route, variables)
            if route.http_method not in allowed:
                allowed.append(route.http_method)
        if allowed:
            raise MethodNotAllowedError(wanted, raw_path, tuple(sorted(allowed)))
        raise RouteNotFoundError(raw_path)
