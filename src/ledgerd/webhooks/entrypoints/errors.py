"""The webhooks' error table: each of its codes with its transport statuses and its meaning.

The composition root registers it with the transports' catalogue; docs/api.md's error table
prints it (`make generate`).
"""

from __future__ import annotations

from ledgerd.platform.api.errors import NOT_FOUND, REFUSED, ErrorSpec, ErrorTable
from ledgerd.webhooks.domain.endpoints import MAX_ENDPOINTS_PER_LEDGER
from ledgerd.webhooks.domain.errors import WebhookErrorCode

WEBHOOK_ERRORS: ErrorTable = {
    WebhookErrorCode.WEBHOOK_NOT_FOUND: ErrorSpec(
        NOT_FOUND,
        "No webhook of the ledger has that id; from CreateWebhook, the webhook its idempotency"
        " key created was deleted since (`details.webhook`), and the key stays spent.",
    ),
    WebhookErrorCode.WEBHOOK_LIMIT_REACHED: ErrorSpec(
        REFUSED, f"The ledger has {MAX_ENDPOINTS_PER_LEDGER} webhooks, the most it may have."
    ),
}
