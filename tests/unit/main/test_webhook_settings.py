"""LEDGERD_WEBHOOKS_ALLOWED_NETWORKS: parsed into the deliveries' address policy, or refused."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from ledgerd.main.contexts.webhooks import address_policy
from ledgerd.main.settings import Settings
from ledgerd.main.settings_errors import load_settings


def test_by_default_no_network_is_allowed_beyond_public_addresses() -> None:
    policy = address_policy(Settings())
    assert policy.allowed_networks == ()
    assert not policy.allows(ipaddress.ip_address("127.0.0.1"))


def test_the_networks_given_are_allowed() -> None:
    policy = address_policy(Settings(webhooks_allowed_networks="127.0.0.0/8, fd00::/8"))
    assert policy.allowed_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )


def test_a_bad_cidr_is_refused_naming_the_setting_and_the_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValidationError, match=r"'10\.0\.0\.0/40' is not a network"):
        Settings(webhooks_allowed_networks="127.0.0.0/8,10.0.0.0/40")
    monkeypatch.setenv("LEDGERD_WEBHOOKS_ALLOWED_NETWORKS", "127.0.0.0/8,intranet")
    problems = load_settings()
    assert isinstance(problems, list)
    expected = (
        "error: LEDGERD_WEBHOOKS_ALLOWED_NETWORKS='127.0.0.0/8,intranet': 'intranet' is not a "
        "network in CIDR notation (e.g. 10.0.0.0/8, fd00::/8): 'intranet' does not appear to "
        "be an IPv4 or IPv6 network"
    )
    assert problems == [expected]


def test_attempts_are_kept_thirty_days_unless_told_and_zero_keeps_them_for_ever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().webhooks_attempts_retention_days == 30
    monkeypatch.setenv("LEDGERD_WEBHOOKS_ATTEMPTS_RETENTION_DAYS", "0")
    loaded = load_settings()
    assert isinstance(loaded, Settings)
    assert loaded.webhooks_attempts_retention_days == 0
    monkeypatch.setenv("LEDGERD_WEBHOOKS_ATTEMPTS_RETENTION_DAYS", "36500")
    loaded = load_settings()
    assert isinstance(loaded, Settings)
    assert loaded.webhooks_attempts_retention_days == 36_500


@pytest.mark.parametrize("days", ["-1", "36501", "a month"])
def test_a_retention_out_of_bounds_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, days: str
) -> None:
    monkeypatch.setenv("LEDGERD_WEBHOOKS_ATTEMPTS_RETENTION_DAYS", days)
    problems = load_settings()
    assert isinstance(problems, list)
    assert len(problems) == 1
    assert problems[0].startswith(f"error: LEDGERD_WEBHOOKS_ATTEMPTS_RETENTION_DAYS={days!r}: ")
