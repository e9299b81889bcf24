"""An event as the HTTP streams send it, rendered once for every subscriber."""

from __future__ import annotations

import json

from ledgerd.streaming.entrypoints.cloud_events import RenderedEvents, cloud_event_json
from tests.fakes.event_log import FakeEventLog


def test_a_payload_that_is_no_ledger_message_keeps_its_bytes_in_base64() -> None:
    event = FakeEventLog("L").append("L", accounts=["a"])
    document = json.loads(cloud_event_json(event))
    # The fake's payload is no protobuf message: it cannot become JSON, so it travels as bytes.
    assert document["data_base64"] == "cGF5bG9hZC0x"  # b"payload-1"
    assert (document["sequence"], document["partitionkey"]) == ("00000000000000000001", "L")
    assert document["source"] == "/ledgers/L"


def test_each_event_is_rendered_once_while_it_is_among_the_last_rendered() -> None:
    log = FakeEventLog("L")
    first, second, third = (log.append("L") for _ in range(3))
    rendered = RenderedEvents(capacity=2)
    one = rendered.json(first)
    assert rendered.json(first) is one  # the same text: not rendered again
    rendered.json(second)
    rendered.json(first)  # used: the most recent now
    rendered.json(third)  # evicts second, the least recently used
    assert rendered.json(first) is one
