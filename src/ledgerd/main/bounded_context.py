"""What a bounded context hands the composition root: one description ``main/`` composes.

A context declares its parts here once — DI providers, gRPC services (REST follows from each
service's ``google.api.http`` annotations, the API reference from their rules and examples),
background workers, CLI commands, error codes, migrations — and the shared wiring (container,
gRPC server, REST gateway, ``serve`` and ``worker``, ``migrate``) takes them from the list of
enabled contexts (``ledgerd.main.contexts``). Adding a context is writing its package, its
description module, and one line in that list.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import grpc
import typer
from dishka import AsyncContainer, Provider
from google.protobuf.descriptor import ServiceDescriptor
from starlette.types import ASGIApp

from ledgerd.kernel.rules import ApiExample, ApiRules
from ledgerd.main.settings import Settings
from ledgerd.platform.api.access import MethodAccess, ServiceAccess
from ledgerd.platform.api.errors import ErrorTable

# A gRPC service's registration: ``ledger_pb2_grpc.add_LedgerServiceServicer_to_server``.
AddToServer = Callable[[Any, grpc.aio.Server], None]

# A background worker runs while its block does: entering starts it, leaving drains it (the
# work in progress finishes). What it yields completes if the worker ends on its own, which a
# worker should never do: the supervisor then stops the process (see ledgerd.main.background).
# The string is the ``ledgerd`` command running it (``serve`` or ``worker``).
RunWorker = Callable[
    [AsyncContainer, Settings, str], AbstractAsyncContextManager[asyncio.Future[None]]
]

# A context's own HTTP endpoints, outside the REST gateway (the OAuth2 endpoints): exact path ->
# the ASGI app that answers it, whatever the method. Resolved once the container is built.
HttpEndpoints = Callable[[AsyncContainer], Awaitable[Mapping[str, ASGIApp]]]


@dataclass(frozen=True, slots=True)
class GrpcService:
    """One gRPC service of a context, served over gRPC and, by its annotations, over REST."""

    descriptor: ServiceDescriptor
    # The servicer's type, resolved from the container (a context's provider provides it).
    servicer: type[object]
    add_to_server: AddToServer
    # The request fields' rules: the REST gateway checks them, the OpenAPI document shows them.
    rules: ApiRules = field(default_factory=ApiRules)
    # One call per operation (by operation id, the RPC's name) for the OpenAPI document.
    examples: Mapping[str, ApiExample] = field(default_factory=dict)
    # What each method (by RPC name) requires of its caller: its scope and the ledger it acts
    # on. Every method needs an entry (tests/unit/main/test_api_access.py): none is public by
    # omission.
    access: ServiceAccess = field(default_factory=dict)
    # The refusal of a resource the caller may not see, by the id asked for: exactly the answer
    # for one that does not exist, so that ids cannot be probed (the ledger's LEDGER_NOT_FOUND).
    # Needed by a service whose access entries name a ledger field.
    hidden: Callable[[str], Exception] | None = None

    @property
    def name(self) -> str:
        return self.descriptor.full_name

    def method_path(self, method: str) -> str:
        """``/ledgerd.v1.LedgerService/PostTransfer``: a method as gRPC and the pipeline name it."""
        return f"/{self.name}/{method}"


@dataclass(frozen=True, slots=True)
class BackgroundWorker:
    """Work a context runs beside the API (``serve``) or in ``ledgerd worker``."""

    name: str
    run: RunWorker
    # Whether this process runs it, per command: settings may move a worker out of ``serve``.
    in_serve: Callable[[Settings], bool] = lambda _settings: True
    in_worker: Callable[[Settings], bool] = lambda _settings: True


@dataclass(frozen=True, slots=True)
class BoundedContext:
    """Everything ``main/`` needs of one bounded context."""

    name: str
    # Made per container: dishka providers hold the registrations of one container.
    providers: Callable[[], Sequence[Provider]]
    services: tuple[GrpcService, ...] = ()
    workers: tuple[BackgroundWorker, ...] = ()
    # Adds the context's commands to the ``ledgerd`` command line.
    commands: Callable[[typer.Typer], None] | None = None
    # The stable error codes the context answers with, each with its gRPC and HTTP status and
    # its meaning: registered with the transports' catalogue (ledgerd.main.error_codes).
    error_codes: ErrorTable = field(default_factory=dict)
    # The folders of its Alembic revisions (``package:folder``), upgraded with the platform's
    # and every other context's (ledgerd.main.migrations); a new context starts its own branch.
    migrations: tuple[str, ...] = ()
    # HTTP endpoints that are no gRPC method (``HttpEndpoints``), served beside the gateway.
    http_endpoints: HttpEndpoints | None = None
    # Run by ``serve`` when it starts stopping, before the servers drain their calls: ends
    # what would otherwise hold a graceful stop for its whole grace (open event streams).
    before_drain: Callable[[AsyncContainer], Awaitable[None]] | None = None
    # Full method paths that take no admission permit: calls open for hours (event streams),
    # bounded by the context's own limits instead.
    unadmitted_methods: tuple[str, ...] = ()


def services_of(contexts: Sequence[BoundedContext]) -> tuple[GrpcService, ...]:
    """Every gRPC service the contexts declare; a name declared twice is a wiring mistake."""
    services = tuple(service for context in contexts for service in context.services)
    names = [service.name for service in services]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        msg = f"gRPC services declared by more than one context: {', '.join(duplicated)}"
        raise ValueError(msg)
    return services


def merged_rules(services: Sequence[GrpcService]) -> ApiRules:
    """The rules of every service, for a gateway that serves them all."""
    fields: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for service in services:
        fields.update(service.rules.fields)
        messages.update(service.rules.messages)
    return ApiRules(fields=fields, messages=messages)


def merged_access(services: Sequence[GrpcService]) -> dict[str, MethodAccess]:
    """What every method of the services requires, by gRPC method path, for the pipeline.

    A method without an entry is absent here: the pipeline refuses what it finds no entry for.
    """
    return {
        service.method_path(method): access
        for service in services
        for method, access in service.access.items()
    }


def merged_examples(services: Sequence[GrpcService]) -> dict[str, ApiExample]:
    """The examples of every service, for one API reference; an operation shown twice is refused.

    Operations are named by their RPC, so two services' methods of one name would show one
    example for both.
    """
    examples: dict[str, ApiExample] = {}
    for service in services:
        shared = sorted(examples.keys() & service.examples.keys())
        if shared:
            msg = (
                f"API examples given twice, the second time by {service.name}: {', '.join(shared)}"
            )
            raise ValueError(msg)
        examples.update(service.examples)
    return examples


@contextlib.asynccontextmanager
async def looping(
    name: str, loop: Callable[[asyncio.Event], Coroutine[object, object, None]]
) -> AsyncIterator[asyncio.Future[None]]:
    """A worker made of one loop: ``loop(stop)`` runs as a task until the block is left.

    Leaving sets ``stop`` and waits for the loop to finish the round in progress; what the
    block yields is the task, done early only if the loop ended on its own (a fault).
    """
    stop = asyncio.Event()
    running = asyncio.create_task(loop(stop), name=name)
    try:
        yield running
    finally:
        stop.set()
        await asyncio.gather(running, return_exceptions=True)


def first_ended(tasks: Sequence[asyncio.Task[None]]) -> asyncio.Future[None]:
    """A future done as soon as any of ``tasks`` is, with its outcome (for a worker's tasks)."""
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def settle(task: asyncio.Task[None]) -> None:
        if ended.done():
            return
        if task.cancelled():
            ended.cancel()
        elif (error := task.exception()) is not None:
            ended.set_exception(error)
        else:
            ended.set_result(None)

    for task in tasks:
        task.add_done_callback(settle)
    return ended


def forget(ended: asyncio.Future[None]) -> None:
    """Mark an outcome seen, once the supervisor no longer watches (a failure while draining)."""
    if ended.done() and not ended.cancelled():
        ended.exception()
