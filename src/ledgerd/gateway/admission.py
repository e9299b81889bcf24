"""The gateway's calls take their permits from the same admission as the gRPC server's.

The in-process invoker calls the servicer directly, past the gRPC interceptors, so without
this a REST client would not count against the process's limit at all. A refusal is the
``OVERLOADED`` error, which the gateway answers 429 with ``Retry-After``. A streamed answer
holds its permit until its last line.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from ledgerd.gateway.invoker import CallOptions, Invoker
from ledgerd.platform.api.admission import Admission


class AdmittingInvoker:
    """``inner`` with each call holding one of ``admission``'s permits while it runs."""

    def __init__(self, inner: Invoker, admission: Admission) -> None:
        self._inner = inner
        self._admission = admission

    async def unary(
        self, method: MethodDescriptor, request: Message, options: CallOptions
    ) -> Message:
        with self._admission.admit():
            return await self._inner.unary(method, request, options)

    async def stream(
        self, method: MethodDescriptor, request: Message, options: CallOptions
    ) -> AsyncGenerator[Message, None]:
        with self._admission.admit():
            items = self._inner.stream(method, request, options)
            async with contextlib.aclosing(items):
                async for item in items:
                    yield item
