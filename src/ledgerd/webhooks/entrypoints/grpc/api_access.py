"""What each WebhookService RPC requires of its caller: one scope and the ledger it acts on.

Two scopes of the identity context's (written as strings: a context may not import another):

- ``webhooks.read``: see a ledger's endpoints, their attempts and dead letters;
- ``webhooks.write``: register, change, disable, enable, delete endpoints, rotate their secrets
  and replay their dead letters. An endpoint receives every event of its ledger its filter
  lets through, so this scope is as strong as reading the ledger, and it makes ledgerd call the
  URLs given: grant it as carefully as ``ledgers.admin``.

Every RPC acts on the one ledger its ``ledger`` field names, which the caller must be granted.
None is public. docs/security.md shows this table.
"""

from __future__ import annotations

from typing import Final

from ledgerd.platform.api.access import MethodAccess, ServiceAccess

WEBHOOKS_READ: Final = "webhooks.read"
WEBHOOKS_WRITE: Final = "webhooks.write"


def _on_ledger(scope: str) -> MethodAccess:
    return MethodAccess(scope=scope, ledger_field="ledger")


WEBHOOK_API_ACCESS: Final[ServiceAccess] = {
    "CreateWebhook": _on_ledger(WEBHOOKS_WRITE),
    "GetWebhook": _on_ledger(WEBHOOKS_READ),
    "ListWebhooks": _on_ledger(WEBHOOKS_READ),
    "UpdateWebhook": _on_ledger(WEBHOOKS_WRITE),
    "DisableWebhook": _on_ledger(WEBHOOKS_WRITE),
    "EnableWebhook": _on_ledger(WEBHOOKS_WRITE),
    "DeleteWebhook": _on_ledger(WEBHOOKS_WRITE),
    "RotateWebhookSecret": _on_ledger(WEBHOOKS_WRITE),
    "ListDeliveryAttempts": _on_ledger(WEBHOOKS_READ),
    "ListDeadLetters": _on_ledger(WEBHOOKS_READ),
    "ReplayDeadLetters": _on_ledger(WEBHOOKS_WRITE),
}
