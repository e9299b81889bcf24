"""The webhook operations' examples, as /docs shows them, replayed for real as one story.

On a fresh server with the ledger ``shop`` and its accounts ``alice`` and ``bob``, each
example's request must get the example's answer, but for the ids and secrets the server makes
up (matched one to one, as for the ledger's examples). No dispatcher runs, so the attempts,
the dead letters and the replay cannot be what the examples show of a failing partner: those
three are checked for their shape, and the shape of each attempt and dead letter shown against
the API's own messages.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.descriptor import Descriptor

from ledgerd.v1 import webhooks_pb2
from ledgerd.webhooks.entrypoints.grpc.api_examples import WEBHOOK_API_EXAMPLES
from tests.e2e.rest.support import RestApi
from tests.e2e.rest.test_api_examples import MadeUpIds, replay, same_answer

# What a dispatcher's work would fill: empty here, checked for shape.
MADE_BY_DELIVERIES = {"ListDeliveryAttempts", "ListDeadLetters", "ReplayDeadLetters"}


def _fields(message: Descriptor) -> set[str]:
    return {field.name for field in message.fields}


async def test_every_webhook_example_answers_as_shown(local_api: RestApi) -> None:
    for path, body in (
        ("/v1/ledgers", {"id": "shop"}),
        ("/v1/ledgers/shop/accounts", {"id": "alice", "asset": "USD/2"}),
        ("/v1/ledgers/shop/accounts", {"id": "bob", "asset": "USD/2"}),
    ):
        made = await local_api.client.post(path, json=body)
        assert made.status_code == 200, made.text
    ids = MadeUpIds()
    for operation, example in WEBHOOK_API_EXAMPLES.items():
        answer = await replay(local_api.client, operation, example, ids)
        assert isinstance(example.response, Mapping)
        if operation in MADE_BY_DELIVERIES:
            assert isinstance(answer, dict)
            assert answer.keys() == example.response.keys(), operation
            continue
        assert same_answer(example.response, answer, ids), (operation, answer)
    gone = await local_api.client.get(ids.into(str(WEBHOOK_API_EXAMPLES["GetWebhook"].path)))
    assert gone.status_code == 404
    assert gone.json()["code"] == "WEBHOOK_NOT_FOUND"


def _shown(operation: str, key: str) -> list[Mapping[str, object]]:
    response = WEBHOOK_API_EXAMPLES[operation].response
    assert isinstance(response, Mapping)
    items = response[key]
    assert isinstance(items, list)
    assert items, operation
    return items


def test_the_examples_of_deliveries_show_every_field_of_the_messages() -> None:
    for attempt in _shown("ListDeliveryAttempts", "attempts"):
        assert set(attempt) == _fields(webhooks_pb2.DeliveryAttempt.DESCRIPTOR)
    for letter in _shown("ListDeadLetters", "dead_letters"):
        assert set(letter) == _fields(webhooks_pb2.DeadLetter.DESCRIPTOR)
