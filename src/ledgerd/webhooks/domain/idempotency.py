"""CreateWebhook's idempotency keys: what a key stands for, and how a retry is recognised.

A client that sends a key with a creation may send the same request again (its answer was
lost): it gets the webhook the key created. The key is kept with the endpoint, beside a
fingerprint of the request's meaningful fields (the URL as checked, the description, the
filter); the same key with another fingerprint is another request, refused as for transfers
(``IDEMPOTENCY_CONFLICT``). The ledger is not in the fingerprint: a key is unique per ledger.

A filter is a pair of sets, so neither the order its lists were sent in nor a name repeated
makes another request. The URL is compared exactly as stored: ``check_url`` changes nothing in
it, so ``HTTPS://`` and ``https://`` are two requests, as they are two stored URLs.

The fingerprints are stored: changing how one is computed would turn the replays of every
webhook created before into conflicts. ``FINGERPRINT_VERSION`` is part of what is hashed, so
that a deliberate change would have to say so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ledgerd.webhooks.domain.endpoints import EventFilter

FINGERPRINT_VERSION = 1
# A SHA-256 in hex.
FINGERPRINT_LENGTH = 64


def creation_fingerprint(url: str, description: str, chosen: EventFilter) -> str:
    """The fingerprint of a CreateWebhook request whose fields were checked (and so are final)."""
    body = {
        "v": FINGERPRINT_VERSION,
        "op": "create_webhook",
        "url": url,
        "description": description,
        "event_types": sorted(chosen.event_types),
        "accounts": sorted(chosen.accounts),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CreationKey:
    """The key a creation was sent with, and the fingerprint of its request."""

    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class KeyedCreation:
    """What a key already used in a ledger stands for.

    ``deleted``: the webhook it created has been deleted since. The key stays spent: a late
    retry must not bring back an endpoint its owner deleted.
    """

    webhook_id: str
    fingerprint: str
    deleted: bool = False
