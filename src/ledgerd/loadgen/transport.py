"""What the load generator needs from the API, the same over gRPC and REST.

One ``Transport`` is one client's connection. Posting never raises for an API or network
failure: the outcome counts it under its error code, as a client would see it (the ledgerd
code from the error body or ``google.rpc.ErrorInfo``; else the transport's own status, e.g.
``UNAVAILABLE`` or ``HTTP_502``; else the client library's exception, e.g.
``CLIENT_ReadTimeout``). The set-up and read calls raise :class:`ApiError` instead, since a
benchmark cannot go on without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from ledgerd.loadgen.workload import Movement

T = TypeVar("T")


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TransferOrder:
    """One transfer to post: its idempotency key and its single leg."""

    key: str
    movement: Movement


@dataclass(slots=True)
class PostOutcome:
    """One request's outcome: the ids posted, the codes of the transfers that failed."""

    ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    replayed: int = 0


@dataclass(frozen=True, slots=True)
class AccountView:
    id: str
    asset: str
    posted_debits: int
    posted_credits: int
    pending_debits: int
    pending_credits: int


@dataclass(frozen=True, slots=True)
class EntryView:
    side: str  # "DEBIT" or "CREDIT"
    layer: str  # "POSTED" or "PENDING"
    amount: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str


class Transport(Protocol):
    async def connect(self) -> None:
        """Open the connection now, so the first timed request does not pay for it."""

    async def close(self) -> None: ...

    async def post(self, ledger: str, orders: Sequence[TransferOrder]) -> PostOutcome:
        """One order: PostTransfer; more: PostTransfers (``transfers:batch``), not atomic."""

    async def ping(self) -> str | None:
        """The trivial call (health check): None when it answered, else the error code."""

    async def create_ledger(self, ledger: str) -> None: ...

    async def create_account(self, ledger: str, account: str, asset: str) -> None: ...

    async def list_accounts(self, ledger: str, token: str) -> Page[AccountView]: ...

    async def list_transfer_ids(
        self, ledger: str, token: str, since: datetime | None
    ) -> Page[str]: ...

    async def list_entries(self, ledger: str, account: str, token: str) -> Page[EntryView]: ...
