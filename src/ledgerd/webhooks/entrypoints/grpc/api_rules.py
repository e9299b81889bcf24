"""Which rules the WebhookService requests follow: the tables the API documents are made of.

The field rules restate the use cases' checks (``webhooks.domain.endpoints``, the kernel's ids,
page sizes and text), so the OpenAPI document states what the server enforces. The URL's
pattern is the first of its checks; the rest (a host, no user name, no fragment) no pattern
can state simply, and the .proto comment says. Every request field is either ruled here or
named in :data:`UNRULED` (a test checks both ways).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ledgerd.kernel.ids import ID_PATTERN, ID_RULE
from ledgerd.kernel.paging import PAGE_SIZE_RULE
from ledgerd.kernel.rules import ApiRules, FieldRule, IntegerRule, ListRule, TextRule
from ledgerd.kernel.text import text_rule
from ledgerd.ledger.published.events import MESSAGES
from ledgerd.webhooks.application.replay_dead_letters import MAX_SEQUENCE
from ledgerd.webhooks.domain.endpoints import (
    MAX_DESCRIPTION_LENGTH,
    MAX_FILTER_ACCOUNTS,
    MAX_FILTER_EVENT_TYPES,
    MAX_SECRET_GRACE,
    MAX_URL_LENGTH,
)

PACKAGE = "ledgerd.v1"
# http:// or https:// (any case, as URL schemes are), then printable ASCII without spaces.
URL_PATTERN = "^[Hh][Tt][Tt][Pp][Ss]?://[!-~]+$"
URL = TextRule(pattern=URL_PATTERN, max_length=MAX_URL_LENGTH)
# UpdateWebhook's: empty keeps the URL.
_URL_OR_EMPTY = TextRule(pattern="^$|" + URL_PATTERN.removeprefix("^"), max_length=MAX_URL_LENGTH)
EVENT_TYPE = TextRule(pattern="^(" + "|".join(re.escape(name) for name in sorted(MESSAGES)) + ")$")
# An endpoint's id is the server's; any id shape is looked up (and not found).
_WEBHOOK = TextRule(pattern=ID_PATTERN.pattern)
_NAMES: dict[str, FieldRule] = {"ledger": ID_RULE, "webhook": _WEBHOOK}
_PAGE: dict[str, FieldRule] = {**_NAMES, "page_size": PAGE_SIZE_RULE}

_BY_MESSAGE: dict[str, dict[str, FieldRule]] = {
    "WebhookFilter": {
        "event_types": ListRule(max_items=MAX_FILTER_EVENT_TYPES, items=EVENT_TYPE),
        "accounts": ListRule(max_items=MAX_FILTER_ACCOUNTS, items=ID_RULE),
    },
    "CreateWebhookRequest": {
        "ledger": ID_RULE,
        "url": URL,
        "description": text_rule(MAX_DESCRIPTION_LENGTH),
        # A transfer's key's rule: one idea of a client's key across the API.
        "idempotency_key": ID_RULE,
    },
    "WebhookRequest": _NAMES,
    "ListWebhooksRequest": {"ledger": ID_RULE, "page_size": PAGE_SIZE_RULE},
    "UpdateWebhookRequest": {
        **_NAMES,
        "url": _URL_OR_EMPTY,
        "description": text_rule(MAX_DESCRIPTION_LENGTH),
    },
    "RotateWebhookSecretRequest": {
        **_NAMES,
        "grace_seconds": IntegerRule(0, int(MAX_SECRET_GRACE.total_seconds())),
    },
    "ListDeliveryAttemptsRequest": _PAGE,
    "ListDeadLettersRequest": _PAGE,
    "ReplayDeadLettersRequest": {**_NAMES, "from_sequence": IntegerRule(0, MAX_SEQUENCE)},
}

# Request fields whose protobuf type says all there is to say, or whose rule no pattern can
# state (opaque page tokens).
UNRULED = frozenset(
    f"{PACKAGE}.{name}"
    for name in (
        "CreateWebhookRequest.filter",
        "UpdateWebhookRequest.filter",
        "ListWebhooksRequest.page_token",
        "ListDeliveryAttemptsRequest.page_token",
        "ListDeadLettersRequest.page_token",
    )
)

FIELD_RULES: Mapping[str, FieldRule] = {
    f"{PACKAGE}.{message}.{field}": rule
    for message, fields in _BY_MESSAGE.items()
    for field, rule in fields.items()
}

WEBHOOK_API_RULES = ApiRules(fields=FIELD_RULES)
