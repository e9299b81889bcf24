"""The webhooks' domain: URLs, filters, secrets and their rotation, signatures, retries."""

from __future__ import annotations

import hashlib
import hmac
import random
from datetime import UTC, datetime, timedelta

import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.webhooks.domain.addresses import AddressPolicy, parse_networks
from ledgerd.webhooks.domain.deliveries import AttemptOutcome, Response, outcome_of
from ledgerd.webhooks.domain.endpoints import (
    EventFilter,
    SigningSecrets,
    check_url,
    new_signing_secret,
)
from ledgerd.webhooks.domain.retries import RetryPolicy
from ledgerd.webhooks.domain.signatures import Delivery, delivery_headers, signature_header

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
LOOPBACK_ALLOWED = AddressPolicy(parse_networks("127.0.0.0/8,::1/128"))


@pytest.mark.parametrize(
    "url",
    [
        "https://partner.example/hooks",
        "http://127.0.0.1:8080/in?token=abc",
        "HTTPS://PARTNER.EXAMPLE",
        "https://[::1]:8443/x",
    ],
)
def test_an_http_or_https_url_with_a_host_is_accepted_as_given(url: str) -> None:
    assert check_url(url, LOOPBACK_ALLOWED) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "is required"),
        ("partner.example/hooks", "must start with http:// or https://"),
        ("ftp://partner.example/", "must start with http:// or https://"),
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("https:///path", "must name a host"),
        ("https://user:pw@partner.example/", "user name or password"),
        ("https://token@partner.example/", "user name or password"),
        ("https://partner.example/#frag", "#fragment"),
        ("https://partner.example/#", "#fragment"),
        ("https://partner.example:0/", "port 0"),
        ("https://partner.example:70000/", "is not a URL"),
        ("https://partner.example/a b", "ASCII without spaces"),
        ("https://partner.éxample/", "ASCII without spaces"),
        ("https://partner.example/\n", "ASCII without spaces"),
        ("https://partner.example/" + "a" * 2048, "at most 2048"),
    ],
)
def test_any_other_url_is_refused_saying_why(url: str, why: str) -> None:
    with pytest.raises(LedgerdError) as refused:
        check_url(url, LOOPBACK_ALLOWED)
    assert refused.value.code is ErrorCode.VALIDATION_FAILED
    assert refused.value.details == {"field": "url"}
    assert why in refused.value.message


def test_an_empty_filter_lets_everything_through() -> None:
    assert EventFilter().matches("ledgerd.v1.LedgerCreated", frozenset())
    assert not EventFilter().needs_accounts


def test_a_filter_needs_a_listed_type_and_one_listed_account() -> None:
    chosen = EventFilter(frozenset({"ledgerd.v1.TransferPosted"}), frozenset({"alice", "bob"}))
    assert chosen.needs_accounts
    assert chosen.matches("ledgerd.v1.TransferPosted", frozenset({"bank", "alice"}))
    assert not chosen.matches("ledgerd.v1.TransferPosted", frozenset({"bank", "carol"}))
    assert not chosen.matches("ledgerd.v1.PendingCreated", frozenset({"alice"}))
    # An event about no account (a ledger's creation) matches no account filter.
    assert not chosen.matches("ledgerd.v1.TransferPosted", frozenset())


def test_a_secret_is_prefixed_and_random() -> None:
    first, second = new_signing_secret(), new_signing_secret()
    assert first.startswith("whsec_")
    assert len(first) == len("whsec_") + 64
    assert first != second


def test_a_rotated_secret_signs_beside_the_new_one_until_its_grace_ends() -> None:
    secrets = SigningSecrets("old").rotated("new", NOW, timedelta(hours=24))
    assert secrets.signing_at(NOW) == ("new", "old")
    assert secrets.signing_at(NOW + timedelta(hours=23, minutes=59)) == ("new", "old")
    assert secrets.signing_at(NOW + timedelta(hours=24)) == ("new",)
    # Rotating again keeps two: the newest and the one it replaces.
    again = secrets.rotated("newest", NOW, timedelta(hours=1))
    assert again.signing_at(NOW) == ("newest", "new")
    # No grace: the replaced secret stops at once.
    assert again.rotated("clean", NOW, timedelta(0)).signing_at(NOW) == ("clean",)


def test_the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body() -> None:
    body = b'{"id":"e1"}'
    expected = hmac.new(b"whsec_k", b"1767225600." + body, hashlib.sha256).hexdigest()
    other = hmac.new(b"whsec_j", b"1767225600." + body, hashlib.sha256).hexdigest()
    assert signature_header(["whsec_k"], 1767225600, body) == f"t=1767225600,v1={expected}"
    assert signature_header(["whsec_k", "whsec_j"], 1767225600, body) == (
        f"t=1767225600,v1={expected},v1={other}"
    )
    with pytest.raises(ValueError, match="one secret at least"):
        signature_header([], 1767225600, body)


def test_a_delivery_names_its_event_in_headers() -> None:
    delivery = Delivery(7, "e-7", "ledgerd.v1.TransferPosted", b"{}")
    headers = delivery_headers(
        delivery, ledger="books", webhook_id="w1", attempt=3, secrets=["s"], timestamp=10
    )
    assert headers == {
        "Content-Type": "application/cloudevents+json; charset=utf-8",
        "Ledgerd-Event-Id": "e-7",
        "Ledgerd-Event-Type": "ledgerd.v1.TransferPosted",
        "Ledgerd-Sequence": "7",
        "Ledgerd-Ledger": "books",
        "Ledgerd-Webhook-Id": "w1",
        "Ledgerd-Delivery-Attempt": "3",
        "Ledgerd-Signature": signature_header(["s"], 10, b"{}"),
    }


def test_back_off_doubles_from_the_first_delay_up_to_the_cap_with_full_jitter() -> None:
    policy = RetryPolicy(first_delay_s=1.0, max_delay_s=600.0, max_attempts=15)
    assert [policy.ceiling_s(n) for n in range(1, 12)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600,
    ]  # fmt: skip
    assert policy.ceiling_s(10_000) == 600.0
    dice = random.Random(7)  # noqa: S311 - jitter in a test
    delays = [policy.delay_s(4, dice.uniform) for _ in range(2000)]
    assert all(0.0 <= delay <= 8.0 for delay in delays)
    # Full jitter: spread over the whole range, not bunched at the ceiling.
    assert min(delays) < 0.5
    assert max(delays) > 7.5
    assert 3.5 < sum(delays) / len(delays) < 4.5


def test_the_last_attempt_allowed_dead_letters() -> None:
    policy = RetryPolicy(max_attempts=3)
    failed = Response(503, None, 5)
    assert outcome_of(failed, 2, policy) is AttemptOutcome.FAILED
    assert outcome_of(failed, 3, policy) is AttemptOutcome.DEAD_LETTERED
    assert outcome_of(Response(204, None, 5), 3, policy) is AttemptOutcome.DELIVERED
    assert outcome_of(Response(302, None, 5), 1, policy) is AttemptOutcome.FAILED
    assert Response(302, None, 5).failure() == "HTTP 302"
    assert Response(None, "timed out after 10 s", 10_000).failure() == "timed out after 10 s"


@pytest.mark.parametrize(
    ("first", "most", "attempts"), [(0.0, 1.0, 3), (2.0, 1.0, 3), (1.0, 2.0, 0)]
)
def test_a_policy_that_cannot_work_is_refused(first: float, most: float, attempts: int) -> None:
    with pytest.raises(ValueError, match=r"positive|once"):
        RetryPolicy(first_delay_s=first, max_delay_s=most, max_attempts=attempts)
