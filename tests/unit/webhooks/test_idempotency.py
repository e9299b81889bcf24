"""CreateWebhook's request fingerprints: what makes two creations the same request."""

from __future__ import annotations

import hashlib
import json

import pytest

from ledgerd.webhooks.domain.endpoints import EventFilter
from ledgerd.webhooks.domain.idempotency import (
    FINGERPRINT_LENGTH,
    FINGERPRINT_VERSION,
    creation_fingerprint,
)

URL = "https://partner.example/hooks"
POSTED = "ledgerd.v1.TransferPosted"
REVERSED = "ledgerd.v1.TransferReversed"
FILTER = EventFilter(frozenset({POSTED, REVERSED}), frozenset({"alice", "bob"}))
BASE = creation_fingerprint(URL, "payments", FILTER)


def test_a_fingerprint_is_a_sha256_in_hex() -> None:
    assert len(BASE) == FINGERPRINT_LENGTH
    assert int(BASE, 16) >= 0


def test_the_filters_order_and_repeats_make_no_other_request() -> None:
    # The filter is two sets: the lists as sent are gone by the time it is fingerprinted, and
    # the fingerprint must not depend on how a set happens to iterate.
    reordered = EventFilter(frozenset([REVERSED, POSTED, POSTED]), frozenset(["bob", "alice"]))
    assert creation_fingerprint(URL, "payments", reordered) == BASE


@pytest.mark.parametrize(
    ("case", "url", "description", "chosen"),
    [
        ("url", "https://partner.example/other", "payments", FILTER),
        ("scheme's case", "HTTPS://partner.example/hooks", "payments", FILTER),
        ("trailing slash", URL + "/", "payments", FILTER),
        ("description", URL, "Payments", FILTER),
        ("no description", URL, "", FILTER),
        ("types", URL, "payments", EventFilter(frozenset({POSTED}), FILTER.accounts)),
        ("accounts", URL, "payments", EventFilter(FILTER.event_types, frozenset({"alice"}))),
        ("no filter", URL, "payments", EventFilter()),
        # A type moved to the accounts: the same strings in another field.
        (
            "fields swapped",
            URL,
            "payments",
            EventFilter(frozenset({"alice", "bob"}), frozenset({POSTED, REVERSED})),
        ),
    ],
)
def test_any_meaningful_field_changed_is_another_request(
    case: str, url: str, description: str, chosen: EventFilter
) -> None:
    assert creation_fingerprint(url, description, chosen) != BASE, case


def test_a_description_cannot_pass_for_a_url() -> None:
    # Each field is its own JSON value: no concatenation two requests could share.
    assert creation_fingerprint("https://a.example/x", "y", EventFilter()) != creation_fingerprint(
        "https://a.example/", "xy", EventFilter()
    )


def test_the_stored_fingerprints_stay_what_they_were() -> None:
    # Fingerprints are stored with the endpoints: a change to how one is computed would make
    # every earlier creation's retry a conflict. This is the documented form, computed by hand.
    body = {
        "accounts": ["alice", "bob"],
        "description": "payments",
        "event_types": [POSTED, REVERSED],
        "op": "create_webhook",
        "url": URL,
        "v": FINGERPRINT_VERSION,
    }
    canonical = json.dumps(body, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == BASE
    # And pinned, so that a change to the canonical form (key order, separators) shows too.
    assert BASE == "ae2844bbbfd6416053d0ecbf41cc2e0c5c33a2caa2c5655daf8a7639239bfcf5"
