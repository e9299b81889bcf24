"""One request and its answer per webhook operation: the examples the API documents show.

They are one story, in order, on the ledger ``shop`` with the accounts ``alice`` and ``bob``
(its events up to sequence 3): a webhook registered, read, listed, changed, disabled and
enabled, its secret rotated, its attempts and dead letters listed, the dead letters replayed,
and the webhook deleted. tests/e2e/rest/test_webhook_api_examples.py replays the story on a
server with no dispatcher running and checks every answer but three: the attempts, the dead
letters and the replay show what a dispatcher would have made of a failing partner, which it
checks in shape only. Ids and secrets are one run's.
"""

from __future__ import annotations

from ledgerd.kernel.rules import ApiExample

_ID = "c8848f5cd8d1452a8c3e80eb948a1743"
_PATH = f"/v1/ledgers/shop/webhooks/{_ID}"
_CREATED_AT = "2030-01-02T03:04:05.123456Z"
_GRACE_ENDS = "2030-01-02T04:04:05.123456Z"  # an hour later: the rotation's grace_seconds
# One run's secrets, shown as the API shows them once: examples, not keys anyone uses.
_FIRST_SECRET = "whsec_1c9c48f0363414f115ca2f5665d2d6cd4c9546eb32933c0f0fff968df3c5fa08"  # noqa: S105
_ROTATED_SECRET = "whsec_ee6b678a9e3f23b9115c65850a636818b0eb1fe3b963d470321fdbe255d6630c"  # noqa: S105


def _webhook(*, changed: bool, enabled: bool = True, **more: object) -> dict[str, object]:
    """The webhook as the story has it: first registered, or once UpdateWebhook changed it."""
    return {
        "id": _ID,
        "ledger": "shop",
        "url": "https://partner.example/ledgerd/v2/events"
        if changed
        else "https://partner.example/ledgerd/events",
        "description": "payments team",
        "filter": {"event_types": [], "accounts": ["alice", "bob"]}
        if changed
        else {
            "event_types": ["ledgerd.v1.TransferPosted", "ledgerd.v1.TransferReversed"],
            "accounts": ["alice"],
        },
        "enabled": enabled,
        "created_at": _CREATED_AT,
        "updated_at": _CREATED_AT,
        "delivered_sequence": "3",
        "failed_attempts": 0,
        "last_error": "",
        "dead_letters": 0,
        "idempotency_key": "payments-team-events",
        **more,
    }


WEBHOOK_API_EXAMPLES: dict[str, ApiExample] = {
    "CreateWebhook": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/webhooks",
        request={
            "url": "https://partner.example/ledgerd/events",
            "description": "payments team",
            "filter": {
                "event_types": ["ledgerd.v1.TransferPosted", "ledgerd.v1.TransferReversed"],
                "accounts": ["alice"],
            },
            "idempotency_key": "payments-team-events",
        },
        response={"webhook": _webhook(changed=False), "secret": _FIRST_SECRET, "replayed": False},
    ),
    "GetWebhook": ApiExample(method="GET", path=_PATH, response=_webhook(changed=False)),
    "ListWebhooks": ApiExample(
        method="GET",
        path="/v1/ledgers/shop/webhooks",
        response={"webhooks": [_webhook(changed=False)], "next_page_token": ""},
    ),
    "UpdateWebhook": ApiExample(
        method="PATCH",
        path=_PATH,
        request={
            "url": "https://partner.example/ledgerd/v2/events",
            "filter": {"event_types": [], "accounts": ["alice", "bob"]},
        },
        response=_webhook(changed=True),
    ),
    "DisableWebhook": ApiExample(
        method="POST",
        path=f"{_PATH}:disable",
        request={},
        response=_webhook(changed=True, enabled=False),
    ),
    "EnableWebhook": ApiExample(
        method="POST", path=f"{_PATH}:enable", request={}, response=_webhook(changed=True)
    ),
    "RotateWebhookSecret": ApiExample(
        method="POST",
        path=f"{_PATH}:rotateSecret",
        request={"grace_seconds": 3600},
        response={
            "webhook": _webhook(changed=True, previous_secret_expires_at=_GRACE_ENDS),
            "secret": _ROTATED_SECRET,
        },
    ),
    "ListDeliveryAttempts": ApiExample(
        method="GET",
        path=f"{_PATH}/attempts?page_size=2",
        response={
            "attempts": [
                {
                    "sequence": "4",
                    "event_id": "0b9e6c1e-5d43-4f7a-9a6e-3f2f0c1d2e4a",
                    "event_type": "ledgerd.v1.TransferPosted",
                    "attempt": 2,
                    "replay": False,
                    "started_at": "2030-01-02T03:04:06.913402Z",
                    "duration_ms": "41",
                    "status_code": 200,
                    "error": "",
                    "outcome": "DELIVERED",
                },
                {
                    "sequence": "4",
                    "event_id": "0b9e6c1e-5d43-4f7a-9a6e-3f2f0c1d2e4a",
                    "event_type": "ledgerd.v1.TransferPosted",
                    "attempt": 1,
                    "replay": False,
                    "started_at": "2030-01-02T03:04:06.102118Z",
                    "duration_ms": "12",
                    "status_code": 503,
                    "error": "HTTP 503",
                    "outcome": "FAILED",
                },
            ],
            "next_page_token": "djE6Nw",
        },
    ),
    "ListDeadLetters": ApiExample(
        method="GET",
        path=f"{_PATH}/deadLetters",
        response={
            "dead_letters": [
                {
                    "sequence": "5",
                    "event_id": "5f2d1c0a-8e3b-4c6d-9a7f-1b2c3d4e5f60",
                    "event_type": "ledgerd.v1.TransferPosted",
                    "attempts": 15,
                    "last_error": "timed out after 10 s",
                    "dead_at": "2030-01-02T04:01:44.270511Z",
                    "replay_requested": False,
                }
            ],
            "next_page_token": "",
        },
    ),
    "ReplayDeadLetters": ApiExample(
        method="POST",
        path=f"{_PATH}:replay",
        request={"from_sequence": "5"},
        response={"replayed": 1},
    ),
    "DeleteWebhook": ApiExample(method="DELETE", path=_PATH, response={}),
}
