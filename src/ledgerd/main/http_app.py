"""The HTTP side of ``ledgerd serve``: REST gateway, health probes, OpenAPI and its docs page.

And the contexts' own HTTP endpoints beside them (identity's OAuth2 endpoints, streaming's
Server-Sent Events and WebSocket streams).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence

import grpc
from dishka import AsyncContainer
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp

from ledgerd.gateway.asgi import Receive, RestGateway, Scope, Send
from ledgerd.gateway.docs_page import render_docs_page
from ledgerd.gateway.framing import framing_refusal
from ledgerd.gateway.http_rules import http_routes
from ledgerd.gateway.invoker import ChannelInvoker, InProcessInvoker, Invoker
from ledgerd.gateway.openapi import openapi_yaml
from ledgerd.gateway.path_template import (
    MalformedPathError,
    PathTemplate,
    check_raw_path,
    parse_path_template,
)
from ledgerd.gateway.router import Router
from ledgerd.main.api_docs import ledgerd_openapi
from ledgerd.main.bounded_context import (
    BoundedContext,
    GrpcService,
    merged_rules,
    services_of,
)
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.health import PROBE_TIMEOUT_S
from ledgerd.platform.api.http_problems import Problem
from ledgerd.platform.api.pipeline import CallPipeline
from ledgerd.platform.db.health import probe_writes


def _served(services: Sequence[GrpcService] | None) -> tuple[GrpcService, ...]:
    return services_of(ENABLED_CONTEXTS) if services is None else tuple(services)


async def resolve_servicers(
    container: AsyncContainer, services: Sequence[GrpcService] | None = None
) -> dict[str, object]:
    """Each service's servicer, by service full name (default: the enabled contexts')."""
    return {service.name: await container.get(service.servicer) for service in _served(services)}


async def resolve_http_endpoints(
    container: AsyncContainer, contexts: Sequence[BoundedContext] | None = None
) -> dict[str, ASGIApp]:
    """Every context's own HTTP endpoints by path (default: the enabled contexts').

    A path two contexts claim is a wiring mistake: which of them should answer?
    """
    endpoints: dict[str, ASGIApp] = {}
    for context in ENABLED_CONTEXTS if contexts is None else contexts:
        if context.http_endpoints is None:
            continue
        claimed = await context.http_endpoints(container)
        shared = sorted(endpoints.keys() & claimed.keys())
        if shared:
            paths = ", ".join(shared)
            msg = f"HTTP paths claimed twice, the second time by {context.name}: {paths}"
            raise ValueError(msg)
        endpoints.update(claimed)
    return endpoints


def build_invoker(
    servicers: Mapping[str, object],
    forward_to: str | None,
    pipeline: CallPipeline,
    channel: grpc.aio.Channel | None = None,
) -> tuple[Invoker, grpc.aio.Channel | None]:
    """In-process by default; with ``forward_to`` (HOST:PORT) a gateway to a remote ledgerd.

    In-process calls pass through ``pipeline``, the gRPC server's: the same request ids,
    deadlines, admission, access log and error classification for both transports. Forwarded
    calls pass through the pipeline of the server they reach, over ``channel`` when given (TLS,
    and a client certificate: ``main/tls.py``), else over a plaintext one.
    """
    if forward_to:
        forwarding = channel or grpc.aio.insecure_channel(forward_to)
        return ChannelInvoker(forwarding), forwarding
    return InProcessInvoker(servicers, pipeline), None


async def served_http_app(
    container: AsyncContainer, forward_to: str | None, channel: grpc.aio.Channel | None = None
) -> tuple[HttpApp, grpc.aio.Channel | None]:
    """The HTTP app a process serves from ``container`` (``serve``'s, Lambda's).

    And the forwarding channel it calls through, if any (``build_invoker``), for the caller to
    close.
    """
    invoker, channel = build_invoker(
        await resolve_servicers(container), forward_to, await container.get(CallPipeline), channel
    )
    app = build_http_app(
        await container.get(AsyncEngine),
        invoker,
        endpoints=await resolve_http_endpoints(container),
    )
    return app, channel


def build_http_app(
    engine: AsyncEngine,
    invoker: Invoker,
    services: Sequence[GrpcService] | None = None,
    endpoints: Mapping[str, ASGIApp] | None = None,
) -> HttpApp:
    """The REST gateway, health probes, the API's reference and ``endpoints``, on one HTTP app.

    The gateway routes every HTTP-annotated method of ``services`` (default: the enabled
    contexts'); ``endpoints`` are the contexts' own (`resolve_http_endpoints`).
    """
    # Routing and transcoding use the generated modules' descriptors; the OpenAPI document and
    # the docs page come from the shipped descriptor set, which also holds the .proto comments.
    served = _served(services)
    routes = tuple(route for service in served for route in http_routes(service.descriptor))
    gateway = RestGateway(Router(routes), invoker, merged_rules(served))
    # The very document `make generate` writes to docs/openapi.yaml. Built on the first request
    # for it, not at start-up: building and rendering it takes ~0.2 s, which every start of
    # serve (and every server a test starts) would otherwise wait for, for pages rarely read;
    # the first request for one of them waits for it instead.
    document = functools.cache(ledgerd_openapi)
    spec_yaml = functools.cache(lambda: openapi_yaml(document()))
    docs_html = functools.cache(lambda: render_docs_page(document()))

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_request: Request) -> Response:
        # Ready means able to post: a database that answers reads but cannot take a write
        # (its write lock held, a read-only standby) is not ready.
        state = await probe_writes(engine, PROBE_TIMEOUT_S)
        if not state.writable:
            return JSONResponse({"ready": False, "reason": state.reason}, status_code=503)
        return JSONResponse({"ready": True})

    async def openapi_json(_request: Request) -> Response:
        return JSONResponse(document())

    async def openapi_yaml_route(_request: Request) -> Response:
        return PlainTextResponse(spec_yaml(), media_type="application/yaml")

    async def docs(_request: Request) -> Response:
        return HTMLResponse(docs_html())

    pages: dict[str, Page] = {
        "/healthz": healthz,
        "/readyz": readyz,
        "/openapi.json": openapi_json,
        "/openapi.yaml": openapi_yaml_route,
        "/docs": docs,
    }
    return HttpApp(pages, gateway, endpoints or {})


Page = Callable[[Request], Awaitable[Response]]


class HttpApp:
    """GET pages, then the contexts' endpoints (any method); else the gateway.

    An endpoint's path is exact, or a template whose ``{name}`` segments match one path segment
    each (``/v1/ledgers/{ledger}/events:stream``), as ``google.api.http`` templates do: the
    values, decoded, are in the scope's ``path_params``. WebSocket connections go to the
    endpoints only; one to any other path is refused with a 404 problem.

    Everything the gateway answers, errors included, is in the API's error format.

    A request whose length could be read two ways is refused before either sees it (see
    :mod:`ledgerd.gateway.framing`).

    Not a router with patterns: a pattern that fails to match (a %0A in an id) or a page hit
    with the wrong method would otherwise answer outside the API's error format.
    """

    def __init__(
        self,
        pages: Mapping[str, Page],
        gateway: RestGateway,
        endpoints: Mapping[str, ASGIApp] | None = None,
    ) -> None:
        self._pages = dict(pages)
        every = dict(endpoints or {})
        self._endpoints = {path: app for path, app in every.items() if "{" not in path}
        self._templates: list[tuple[PathTemplate, ASGIApp]] = [
            (parse_path_template(path), app) for path, app in every.items() if "{" in path
        ]
        shared = sorted(self._pages.keys() & self._endpoints.keys())
        if shared:
            msg = f"HTTP paths claimed by a context and by the server's pages: {', '.join(shared)}"
            raise ValueError(msg)
        self._gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return  # no lifespan events here (uvicorn runs with lifespan off)
        refusal = framing_refusal(scope["headers"])
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        page = self._pages.get(scope["path"]) if scope["method"] in {"GET", "HEAD"} else None
        if page is None:
            endpoint = self._endpoint(scope)
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
            await self._gateway(scope, receive, send)
            return
        response = await page(Request(scope, receive))
        await response(scope, receive, send)

    def _endpoint(self, scope: Scope) -> ASGIApp | None:
        """The context's endpoint for the request's path (its ``path_params`` set), or None."""
        exact = self._endpoints.get(scope["path"])
        if exact is not None or not self._templates:
            return exact
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        try:
            check_raw_path(raw_path)
        except MalformedPathError:
            return None  # the gateway answers it, in the API's error format
        for template, app in self._templates:
            values = template.match(raw_path)
            if values is not None:
                scope["path_params"] = values
                return app
        return None

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._endpoint(scope)
        if endpoint is not None:
            await endpoint(scope, receive, send)
            return
        problem = Problem(404, "ROUTE_NOT_FOUND", f"no WebSocket endpoint at {scope['path']}")
        if "websocket.http.response" in scope.get("extensions", {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": problem.status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": problem.json().encode()})
            return
        await send({"type": "websocket.close", "code": 1008})
