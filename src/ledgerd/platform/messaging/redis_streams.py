"""The Redis Streams adapter: a deduplicating publisher and a consumer-group subscriber.

Mapping:

- **Stream**: one stream key for every event (default ``ledgerd:events``). Each envelope is
  one entry: a field ``ce-<attribute>`` per :meth:`Envelope.attributes` entry (UTF-8
  strings; entry fields are binary-safe, so nothing needs escaping) and a field ``data``
  holding ``envelope.data`` as is. Optionally trimmed with ``XADD MAXLEN ~ n``
  (approximate: Redis drops whole internal nodes only, so the stream keeps ``n`` entries or
  somewhat more); an entry trimmed before a group read it is lost to that group, so ``n``
  must cover the slowest group's lag.
- **Deduplication**: one Lua script per ``publish`` call walks the envelopes in order and,
  for each, runs ``SET {<stream>}:seen:<id> 1 NX EX <ttl>`` and appends the entry only if
  that key was new, so an envelope the relay sends again within ``dedupe_ttl_s`` (default
  ten minutes) is not appended twice. If the append itself fails the script deletes the key
  it has just set (a script is atomic but not transactional: an error undoes nothing), so
  the retry is not taken for a duplicate. The key carries the stream's name as its hash tag
  (or the stream key's own tag, if it has one), which puts it in the stream's hash slot, so
  the script runs on Redis Cluster too. The TTL bounds the memory the keys take (some
  100-150 bytes per event published within the TTL); a copy sent later is appended again,
  and the consumers' inbox drops it.
- **Ordering**: the script appends in the order given and stops at the first failure, and
  Redis runs one script at a time, so a batch's entries are contiguous and in order and
  nothing after a failed envelope is appended ahead of it. One round trip per batch.
- **Failures**: connection errors, socket timeouts (``socket_timeout_s``,
  ``connect_timeout_s``; one immediate retry on a fresh connection, harmless thanks to the
  deduplication) and a server that cannot write now (out of memory, loading, read-only
  replica, busy with a script): ``BrokerUnavailableError``. A broken connection leaves the
  pool and the next call opens a new one, so the same publisher works again once Redis is
  back.
- **Subscriber**: a consumer group named after the group, one consumer in it per subscriber
  object (removed on ``aclose`` if it holds no pending entry). A missing group is created
  with ``MKSTREAM`` at ``$``: it gets what is appended from then on, which is what a
  subscriber made before the events it waits for needs; a group that must also see what
  was appended before it existed (a new read model, say) passes ``deliver_all=True`` to
  start at ``0``. An existing group keeps its position. Each round first claims, with
  ``XAUTOCLAIM``, entries pending in the group for ``abandoned_after_s`` or more (held by a
  consumer that died or hung, or nacked, below), then reads new ones with ``XREADGROUP >``,
  blocking at most ``block_s``. ``ack`` is ``XACK``. ``nack`` is
  ``XCLAIM <id> IDLE <abandoned_after_s> JUSTID``: the entry stays pending but looks
  abandoned already, so the next round of any consumer of the group claims it and delivers
  it again, without waiting for ``abandoned_after_s``. (Appending it again instead would
  give it a new id and show it twice to every other group.) Entries read but not yet
  handed out when the iteration stops are nacked that way on the way out. A malformed
  entry is delivered with ``envelope=None`` and the reason; its ``ack`` is ``XACK`` (the
  entry stays in the stream, for other groups).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from ledgerd.platform.messaging.envelope import Envelope, MalformedEventError
from ledgerd.platform.messaging.ports import BrokerUnavailableError, Delivery, PublishError

log = logging.getLogger(__name__)

DEFAULT_STREAM = "ledgerd:events"
HEADER_PREFIX = "ce-"
DATA_FIELD = "data"

# A server that is there but cannot take the write now is an outage, not the events' fault.
# redis-py raises a class of its own for most such replies (see _unavailable); these two
# codes it leaves in a plain ResponseError.
_UNAVAILABLE_CODES = frozenset({"BUSY", "NOREPLICAS"})

# KEYS: the stream, then each envelope's dedupe key. ARGV: the TTL, MAXLEN (0: none), then per
# envelope its number of field/value items followed by those items. Returns, per envelope,
# the new entry id or nil when it was a duplicate.
_PUBLISH_SCRIPT = """
local ttl = ARGV[1]
local maxlen = tonumber(ARGV[2])
local added = {}
local at = 3
for index = 2, #KEYS do
  local count = tonumber(ARGV[at])
  local fields = {unpack(ARGV, at + 1, at + count)}
  at = at + count + 1
  if redis.call('SET', KEYS[index], '1', 'NX', 'EX', ttl) then
    local id
    if maxlen > 0 then
      id = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(fields))
    else
      id = redis.pcall('XADD', KEYS[1], '*', unpack(fields))
    end
    if type(id) == 'table' and id.err then
      redis.call('DEL', KEYS[index])
      return id
    end
    added[index - 1] = id
  else
    added[index - 1] = false
  end
end
return added
"""


def dedupe_key(stream: str, event_id: str) -> str:
    """The key that marks ``event_id`` as appended to ``stream``, in the stream's hash slot."""
    if not stream:
        msg = "the stream key is empty"
        raise ValueError(msg)
    if _hash_tag(stream) is not None:
        return f"{stream}:seen:{event_id}"  # starts with the stream's own tag
    if "}" in stream:
        # Hashed whole, and a tag cannot hold a "}": no other key shares its slot for sure.
        msg = f"a stream key with a '}}' must carry a hash tag, as {{tag}}: {stream!r}"
        raise ValueError(msg)
    return f"{{{stream}}}:seen:{event_id}"  # tagged with the whole name: hashed as the stream


def _hash_tag(key: str) -> str | None:
    # Redis Cluster hashes only the part between the first "{" and the next "}", if any.
    opening = key.find("{")
    closing = key.find("}", opening + 1) if opening >= 0 else -1
    return key[opening + 1 : closing] if closing > opening + 1 else None


def entry_fields(envelope: Envelope) -> dict[str, str | bytes]:
    """The stream entry of ``envelope``: binary-mode attributes and the payload."""
    fields: dict[str, str | bytes] = {
        HEADER_PREFIX + name: value for name, value in envelope.attributes().items()
    }
    fields[DATA_FIELD] = envelope.data
    return fields


def envelope_of(fields: Mapping[bytes, bytes]) -> Envelope:
    """The envelope a stream entry carries; ``MalformedEventError`` if it is none."""
    attributes: dict[str, str] = {}
    data: bytes | None = None
    for raw_name, value in fields.items():
        name = raw_name.decode("utf-8", errors="replace").lower()
        if name == DATA_FIELD:
            data = value
        elif name.startswith(HEADER_PREFIX):
            try:
                attributes[name.removeprefix(HEADER_PREFIX)] = value.decode()
            except UnicodeDecodeError as error:
                msg = f"field {name} is not UTF-8"
                raise MalformedEventError(msg) from error
    if data is None:
        msg = f"no {DATA_FIELD} field"
        raise MalformedEventError(msg)
    return Envelope.from_attributes(attributes, data)


class RedisStreamsPublisher:
    """Appends envelopes to a Redis stream, once each; see the module docstring."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        stream: str,
        dedupe_ttl_s: int,
        max_length: int | None,
    ) -> None:
        self._client = client
        self._stream = stream
        self._dedupe_ttl_s = dedupe_ttl_s
        self._max_length = max_length
        self._script: AsyncScript = client.register_script(_PUBLISH_SCRIPT)

    @classmethod
    async def connect(  # noqa: PLR0913 - every knob is explicit, by keyword
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        dedupe_ttl_s: int = 600,
        max_length: int | None = None,
        socket_timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
    ) -> RedisStreamsPublisher:
        """Connect to ``url`` (``redis://host:port/db``) and check that Redis answers.

        ``max_length``: trim the stream to about this many entries (``None``: never trim).
        ``BrokerUnavailableError`` if Redis cannot be reached.
        """
        if dedupe_ttl_s < 1:
            msg = "dedupe_ttl_s is a whole number of seconds, at least 1"
            raise ValueError(msg)
        dedupe_key(stream, "")  # refuses a stream name its marks could not share a slot with
        client = await _connect(
            url, socket_timeout_s=socket_timeout_s, connect_timeout_s=connect_timeout_s
        )
        return cls(client, stream=stream, dedupe_ttl_s=dedupe_ttl_s, max_length=max_length)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if not envelopes:
            return
        keys = [self._stream] + [dedupe_key(self._stream, envelope.id) for envelope in envelopes]
        args: list[str | bytes | int] = [self._dedupe_ttl_s, self._max_length or 0]
        for envelope in envelopes:
            fields = entry_fields(envelope)
            args.append(2 * len(fields))
            for name, value in fields.items():
                args.extend((name, value))
        try:
            added = await self._script(keys=keys, args=args)
        except redis.exceptions.ResponseError as error:
            if _unavailable(error):
                msg = f"Redis cannot append now: {error}"
                raise BrokerUnavailableError(msg) from error
            msg = f"Redis refused the batch: {error}"
            raise PublishError(msg) from error
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
            msg = f"Redis did not answer: {type(error).__name__}: {error}"
            raise BrokerUnavailableError(msg) from error
        duplicates = sum(1 for entry_id in added if entry_id is None)
        if duplicates:
            log.debug("%d of %d envelopes were on %s already", duplicates, len(added), self._stream)

    async def aclose(self) -> None:
        await self._client.aclose()


class RedisStreamsSubscriber:
    """Deliveries to one consumer of a Redis consumer group; see the module docstring."""

    def __init__(  # noqa: PLR0913 - every knob is explicit, by keyword
        self,
        client: redis.asyncio.Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        deliver_all: bool,
        batch: int,
        block_s: float,
        abandoned_after_s: float,
    ) -> None:
        self._client = client
        self._stream = stream
        self._group = group
        self._consumer = consumer
        self._deliver_all = deliver_all
        self._batch = batch
        self._block_ms = max(1, round(block_s * 1000))
        self._abandoned_after_ms = max(1, round(abandoned_after_s * 1000))
        self._claim_cursor = "0-0"
        self._closed = False

    @classmethod
    async def connect(  # noqa: PLR0913 - every knob is explicit, by keyword
        cls,
        url: str,
        group: str,
        *,
        stream: str = DEFAULT_STREAM,
        consumer: str | None = None,
        deliver_all: bool = False,
        batch: int = 64,
        block_s: float = 0.5,
        abandoned_after_s: float = 30.0,
        socket_timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
    ) -> RedisStreamsSubscriber:
        """Connect to ``url``, create the group if it is missing, and join it.

        ``consumer``: this subscriber's name in the group (default: host, process and a
        random suffix). ``deliver_all``: a group created now starts at the beginning of the
        stream rather than with what is appended from now on. ``abandoned_after_s``: an
        entry delivered but neither acked nor nacked for that long is delivered again, to
        whichever consumer of the group asks first.
        """
        client = await _connect(
            url,
            # A blocked XREADGROUP must not count as a dead socket.
            socket_timeout_s=block_s + socket_timeout_s,
            connect_timeout_s=connect_timeout_s,
        )
        subscriber = cls(
            client,
            stream=stream,
            group=group,
            consumer=consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            deliver_all=deliver_all,
            batch=batch,
            block_s=block_s,
            abandoned_after_s=abandoned_after_s,
        )
        try:
            await subscriber._ensure_group()
        except BaseException:
            await client.aclose()
            raise
        return subscriber

    async def _ensure_group(self) -> None:
        try:
            await self._client.xgroup_create(
                self._stream, self._group, id="0" if self._deliver_all else "$", mkstream=True
            )
        except redis.exceptions.ResponseError as error:
            if not str(error).startswith("BUSYGROUP"):  # it exists: keep its position
                raise
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            msg = f"Redis did not answer: {type(error).__name__}: {error}"
            raise BrokerUnavailableError(msg) from error

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        while not self._closed:
            entries = await self._next_entries()
            delivered = 0
            try:
                for entry_id, fields in entries:
                    delivered += 1
                    yield self._delivery(entry_id, fields)
            finally:
                # Left before the end of a batch: make the rest due again now rather than
                # after abandoned_after.
                for entry_id, _ in entries[delivered:]:
                    with contextlib.suppress(redis.exceptions.RedisError, OSError):
                        await self._nack(entry_id)

    async def _next_entries(self) -> list[tuple[bytes, Mapping[bytes, bytes]]]:
        try:
            claimed = await self._claim_abandoned()
            return claimed or await self._read_new()
        except redis.exceptions.ResponseError as error:
            if not str(error).startswith("NOGROUP"):
                raise
            # The stream or the group was deleted under us: start again from what comes next.
            log.warning(
                "Redis group %s on %s is gone; creating it again", self._group, self._stream
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            if not self._closed:
                log.warning("Redis read failed, retrying: %s: %s", type(error).__name__, error)
                # A pause before asking again, as the blocking read would have made.
                await asyncio.sleep(self._block_ms / 1000)
            return []
        with contextlib.suppress(BrokerUnavailableError):  # if so, the next round says why
            await self._ensure_group()
        return []

    async def _claim_abandoned(self) -> list[tuple[bytes, Mapping[bytes, bytes]]]:
        response: list[Any] = await self._client.xautoclaim(
            self._stream,
            self._group,
            self._consumer,
            min_idle_time=self._abandoned_after_ms,
            start_id=self._claim_cursor,
            count=self._batch,
        )
        cursor, entries = response[0], response[1]
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        # Entries trimmed from the stream while pending: Redis 7 lists them apart (and
        # forgets them); older servers give them without fields.
        return [(entry_id, fields) for entry_id, fields in entries if entry_id is not None]

    async def _read_new(self) -> list[tuple[bytes, Mapping[bytes, bytes]]]:
        response: Any = await self._client.xreadgroup(
            self._group,
            self._consumer,
            {self._stream: ">"},
            count=self._batch,
            block=self._block_ms,
        )
        # [[stream, [(id, fields), ...]]], or nothing when the block timed out.
        return [
            (entry_id, fields)
            for _, entries in response or []
            for entry_id, fields in entries
            if entry_id is not None
        ]

    def _delivery(self, entry_id: bytes, fields: Mapping[bytes, bytes]) -> Delivery:
        ack = functools.partial(self._ack, entry_id)
        nack = functools.partial(self._nack, entry_id)
        try:
            envelope = envelope_of(fields or {})
        except MalformedEventError as error:
            problem = f"not a ledgerd event at {self._stream} {entry_id.decode()}: {error}"
            return Delivery(envelope=None, problem=problem, ack=ack, nack=nack)
        return Delivery(envelope=envelope, problem=None, ack=ack, nack=nack)

    async def _ack(self, entry_id: bytes) -> None:
        await self._client.xack(self._stream, self._group, entry_id)

    async def _nack(self, entry_id: bytes) -> None:
        # Still pending, but idle for abandoned_after already: the next XAUTOCLAIM of any
        # consumer in the group takes it. (A larger IDLE would not do: Redis caps the
        # delivery time it implies at "now".)
        await self._client.xclaim(
            self._stream,
            self._group,
            self._consumer,
            min_idle_time=0,
            message_ids=[entry_id],
            idle=self._abandoned_after_ms,
            justid=True,
        )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await self._forget_consumer()
        finally:
            await self._client.aclose()

    async def _forget_consumer(self) -> None:
        # A consumer per subscriber object would pile up in the group; one holding no
        # pending entry can go (deleting one that holds some would lose them).
        pending = await self._client.xpending_range(
            self._stream, self._group, min="-", max="+", count=1, consumername=self._consumer
        )
        if not pending:
            await self._client.xgroup_delconsumer(self._stream, self._group, self._consumer)


def _unavailable(error: redis.exceptions.ResponseError) -> bool:
    code = str(error).split(" ", 1)[0]
    return code in _UNAVAILABLE_CODES or isinstance(
        error,
        redis.exceptions.OutOfMemoryError
        | redis.exceptions.ReadOnlyError
        | redis.exceptions.TryAgainError
        | redis.exceptions.ClusterDownError,
    )


async def _connect(
    url: str, *, socket_timeout_s: float, connect_timeout_s: float
) -> redis.asyncio.Redis:
    client = redis.asyncio.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        # One immediate retry on a new connection gets past a pooled connection the server
        # (or a network blip) closed; more would only stretch the time an outage takes to
        # surface. The default retries ten times with back-off.
        retry=Retry(NoBackoff(), retries=1),
        decode_responses=False,
        protocol=2,  # the reply shapes parsed here, whatever the URL asks for
    )
    try:
        await client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
        await client.aclose()
        msg = f"cannot connect to Redis at {url}: {type(error).__name__}: {error}"
        raise BrokerUnavailableError(msg) from error
    return client
