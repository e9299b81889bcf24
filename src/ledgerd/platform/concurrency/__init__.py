"""Go's concurrency patterns done right in asyncio: channels, fan-in/out, pools, pipelines, ...

Every primitive here is built around what happens when things stop: closing never discards
an accepted item, cancelling never leaks a task or loses an item, and full buffers push back
on producers instead of growing. ``docs/concurrency.md`` says what each one guarantees.
"""

from ledgerd.platform.concurrency.channel import Channel, ChannelClosedError
from ledgerd.platform.concurrency.context import (
    Context,
    ContextCancelledError,
    Done,
    Scope,
    current,
)
from ledgerd.platform.concurrency.fair_queue import FairQueue, Lease
from ledgerd.platform.concurrency.fanning import fan_in, fan_out
from ledgerd.platform.concurrency.group import ErrorGroup
from ledgerd.platform.concurrency.notifier import Notifier
from ledgerd.platform.concurrency.once import Once
from ledgerd.platform.concurrency.pipeline import Pipeline, Stage, pipeline
from ledgerd.platform.concurrency.pool import WorkerPool
from ledgerd.platform.concurrency.rwlock import RWLock
from ledgerd.platform.concurrency.singleflight import SingleFlight

__all__ = [
    "Channel",
    "ChannelClosedError",
    "Context",
    "ContextCancelledError",
    "Done",
    "ErrorGroup",
    "FairQueue",
    "Lease",
    "Notifier",
    "Once",
    "Pipeline",
    "RWLock",
    "Scope",
    "SingleFlight",
    "Stage",
    "WorkerPool",
    "current",
    "fan_in",
    "fan_out",
    "pipeline",
]
