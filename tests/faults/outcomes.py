"""Per-key bookkeeping for the fault tests: what each answer says about the transfer's key.

DESIGN.md, "What a client may rely on", sorts every answer a client can get into three:

- **acknowledged** (gRPC OK, HTTP 200, an OK item of a PostTransfers answer): committed;
- **definite failure** (a ledgerd error, i.e. a gRPC status carrying ``google.rpc.ErrorInfo``
  of domain ``ledgerd`` or an HTTP problem body ``{code, message, details}``, other than
  ``OUTCOME_UNKNOWN``): nothing was written;
- **ambiguous** (``OUTCOME_UNKNOWN``, or anything the client library made up without an answer
  from ledgerd: UNAVAILABLE because the server died, the client's own deadline, a broken
  connection): resolved by sending the same body with the same key again, or looking it up.

A test records every answer per idempotency key (``Book.record``) and, at the end, holds the
server to it: every acknowledged key present once, no definite failure present, nothing left
unresolved. The classifiers (``grpc_reply``, ``rest_reply``, ``item_reply``) and the ``Book``
know nothing of the workload, so every fault test can use them.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledgerd.v1 import ledger_pb2 as pb

ERROR_DOMAIN = "ledgerd"
OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
HTTP_OK = 200
# Refusals of one call that say nothing of an earlier call with the same key: after an
# ambiguous answer, a retry refused with one of these leaves the key as unresolved as it was.
REFUSALS_OF_THIS_CALL_ONLY = frozenset(
    {"UNAVAILABLE", "OVERLOADED", "DEADLINE_EXCEEDED", "CONCURRENCY_CONFLICT"}
)


class Answer(Enum):
    ACKNOWLEDGED = "acknowledged"
    FAILED = "definite failure"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class Reply:
    """What one call said about one key; ``why`` is the ledgerd code or the client's error."""

    answer: Answer
    why: str = ""
    transfer: pb.Transfer | None = None
    # Told only by a PostTransfers item: the key had been used with this body before.
    replayed: bool = False
    at: float = field(default_factory=time.monotonic)

    @classmethod
    def acknowledged(cls, transfer: pb.Transfer, *, replayed: bool = False) -> Reply:
        return cls(Answer.ACKNOWLEDGED, "OK", transfer, replayed=replayed)

    @classmethod
    def ledgerd_error(cls, code: str) -> Reply:
        answer = Answer.AMBIGUOUS if code == OUTCOME_UNKNOWN else Answer.FAILED
        return cls(answer, code)

    @classmethod
    def no_answer(cls, why: str) -> Reply:
        return cls(Answer.AMBIGUOUS, why)


# --- reading answers -------------------------------------------------------------------------


def ledgerd_code(error: grpc.aio.AioRpcError) -> str | None:
    """The ledgerd code a failed gRPC call carries, or ``None`` if ledgerd did not answer."""
    try:
        # from_call reads code(), details() and trailing_metadata(), which AioRpcError offers.
        status = rpc_status.from_call(cast("grpc.Call", error))
    except ValueError:  # a rich status that contradicts the call's own: not ledgerd's answer
        return None
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == ERROR_DOMAIN:
            return info.reason
    return None


def grpc_reply(error: grpc.aio.AioRpcError) -> Reply:
    """A failed gRPC call: a ledgerd error, or (no ErrorInfo) the client library's own."""
    code = ledgerd_code(error)
    if code is None:
        return Reply.no_answer(f"grpc {error.code().name}")
    return Reply.ledgerd_error(code)


def problem_code(content: bytes) -> str | None:
    """The code of a ledgerd problem body ``{code, message, details}``, else ``None``."""
    try:
        body = json.loads(content)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("code"), str) and "message" in body:
        return str(body["code"])
    return None


def rest_error_reply(status: int, content: bytes) -> Reply:
    """An HTTP answer other than 200: a ledgerd problem, or something ledgerd did not say."""
    code = problem_code(content)
    if code is None:
        return Reply.no_answer(f"HTTP {status} without a problem body")
    return Reply.ledgerd_error(code)


def rest_reply(status: int, content: bytes) -> Reply:
    """Any HTTP answer to a call whose 200 carries no transfer of interest (its body aside)."""
    if status == HTTP_OK:
        return Reply(Answer.ACKNOWLEDGED, "OK")
    return rest_error_reply(status, content)


def item_reply(result: pb.TransferResult) -> Reply:
    """One item of a PostTransfers answer."""
    if result.WhichOneof("outcome") == "transfer":
        return Reply.acknowledged(result.transfer, replayed=result.replayed)
    return Reply.ledgerd_error(result.error.code)


def transfer_of_json(document: dict[str, Any]) -> pb.Transfer:
    return json_format.ParseDict(document, pb.Transfer())


def result_of_json(document: dict[str, Any]) -> pb.TransferResult:
    return json_format.ParseDict(document, pb.TransferResult())


# --- the book --------------------------------------------------------------------------------


class KeyState(Enum):
    ACKNOWLEDGED = "acknowledged"  # committed: must be present, once
    FAILED = "failed"  # nothing written: must be absent
    UNRESOLVED = "unresolved"  # written or not: the client must find out


@dataclass
class KeyRecord:
    key: str
    replies: list[Reply] = field(default_factory=list)

    @property
    def transfer(self) -> pb.Transfer | None:
        """The transfer the first acknowledgement named."""
        return next((r.transfer for r in self.replies if r.answer is Answer.ACKNOWLEDGED), None)

    @property
    def was_ambiguous(self) -> bool:
        return any(reply.answer is Answer.AMBIGUOUS for reply in self.replies)

    @property
    def first_ambiguous_at(self) -> float | None:
        """When the first ambiguous answer came (monotonic clock), if one did."""
        return next((r.at for r in self.replies if r.answer is Answer.AMBIGUOUS), None)

    @property
    def state(self) -> KeyState:
        if self.transfer is not None:
            return KeyState.ACKNOWLEDGED
        last = self.replies[-1]
        if last.answer is Answer.AMBIGUOUS:
            return KeyState.UNRESOLVED
        if self.was_ambiguous and last.why in REFUSALS_OF_THIS_CALL_ONLY:
            return KeyState.UNRESOLVED
        return KeyState.FAILED

    @property
    def named_other_transfers(self) -> list[str]:
        """Acknowledgements naming another transfer than the first did: a duplicate."""
        first = self.transfer
        return [
            reply.transfer.id
            for reply in self.replies
            if reply.transfer is not None and first is not None and reply.transfer.id != first.id
        ]


@dataclass
class Book:
    """Every key a test used, with every answer it got; and the calls it made."""

    keys: dict[str, KeyRecord] = field(default_factory=dict)
    requests: int = 0
    # How often each answer came: "OK", a ledgerd code, or what the client library said.
    codes: Counter[str] = field(default_factory=Counter)
    # When each acknowledgement arrived (monotonic clock), in arrival order.
    acknowledged_at: list[float] = field(default_factory=list)
    _acknowledgement: asyncio.Event = field(default_factory=asyncio.Event)
    _on_next_acknowledgement: Callable[[], None] | None = None

    def open(self, key: str) -> None:
        assert key not in self.keys, f"key {key} used twice by the workload"
        self.keys[key] = KeyRecord(key)

    def record(self, key: str, reply: Reply) -> None:
        self.keys[key].replies.append(reply)
        self.codes[reply.why] += 1
        if reply.answer is Answer.ACKNOWLEDGED:
            bisect.insort(self.acknowledged_at, reply.at)
            self._acknowledgement.set()
            hook, self._on_next_acknowledgement = self._on_next_acknowledgement, None
            if hook is not None:
                hook()

    def on_next_acknowledgement(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` as the next acknowledgement is booked, before anything else runs."""
        self._on_next_acknowledgement = hook

    def state(self, key: str) -> KeyState:
        return self.keys[key].state

    def in_state(self, state: KeyState) -> list[KeyRecord]:
        return [record for record in self.keys.values() if record.state is state]

    def acknowledgements_after(self, instant: float) -> list[float]:
        """When acknowledgements arrived after ``instant`` (monotonic clock), in order."""
        return self.acknowledged_at[bisect.bisect_right(self.acknowledged_at, instant) :]

    async def until_acknowledged(self, count: int, *, after: float) -> list[float]:
        """Wait for ``count`` acknowledgements after ``after``; when they came, in order."""
        while len(since := self.acknowledgements_after(after)) < count:
            self._acknowledgement.clear()
            await self._acknowledgement.wait()
        return since

    def ambiguous(self) -> list[KeyRecord]:
        return [record for record in self.keys.values() if record.was_ambiguous]
