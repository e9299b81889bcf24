from __future__ import annotations

from datetime import timedelta

import pytest

from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.refresh_families import (
    RefreshFamily,
    RefreshPolicy,
    RefreshRefusal,
    RevocationCause,
    start_family,
)
from ledgerd.identity.domain.scopes import Scope
from tests.fakes.clock import ManualClock

POLICY = RefreshPolicy(absolute_lifetime=timedelta(days=30), idle_timeout=timedelta(days=7))
GRANT = AccessGrant(frozenset({Scope.LEDGER_READ}), frozenset({"main"}))


def _family(clock: ManualClock) -> RefreshFamily:
    return start_family(
        family_id="f1",
        client_id="c1",
        subject="alice",
        grant=GRANT,
        policy=POLICY,
        first_digest="d0",
        now=clock.now(),
    )


def test_using_the_current_token_yields_the_next_in_the_same_family() -> None:
    clock = ManualClock()
    family = _family(clock)

    redemption = family.redeem("d0", "d1", clock.advance(timedelta(hours=1)))

    assert redemption.accepted
    rotated = redemption.family
    assert (rotated.family_id, rotated.current_digest, rotated.generation) == ("f1", "d1", 1)
    assert rotated.current_issued_at == clock.now()
    assert rotated.redeem("d1", "d2", clock.now()).accepted


def test_a_token_is_single_use_and_its_reuse_revokes_the_family() -> None:
    clock = ManualClock()
    rotated = _family(clock).redeem("d0", "d1", clock.now()).family

    reuse = rotated.redeem("d0", "dX", clock.advance(timedelta(minutes=1)))

    assert reuse.refusal is RefreshRefusal.REUSED
    assert reuse.family.revoked_at == clock.now()
    assert reuse.family.revocation_cause is RevocationCause.REUSE_DETECTED
    assert reuse.family.generation == rotated.generation + 1
    # The newest token, held by whoever won the race, is dead too.
    assert reuse.family.redeem("d1", "d2", clock.now()).refusal is RefreshRefusal.REVOKED


def test_a_family_idle_beyond_its_timeout_refuses_its_token() -> None:
    clock = ManualClock()
    family = _family(clock)
    clock.advance(POLICY.idle_timeout - timedelta(seconds=1))
    family = family.redeem("d0", "d1", clock.now()).family

    clock.advance(POLICY.idle_timeout)

    refused = family.redeem("d1", "d2", clock.now())
    assert refused.refusal is RefreshRefusal.IDLE
    assert refused.family == family


def test_a_family_ends_at_its_absolute_lifetime_however_active() -> None:
    clock = ManualClock()
    family, digest = _family(clock), "d0"
    for step in range(1, 5):
        clock.advance(timedelta(days=6))
        family = family.redeem(digest, f"d{step}", clock.now()).family
        digest = f"d{step}"
    assert family.generation == 4

    clock.advance(timedelta(days=6))

    assert family.redeem(digest, "dX", clock.now()).refusal is RefreshRefusal.EXPIRED


def test_a_revoked_family_refuses_and_keeps_its_first_cause() -> None:
    clock = ManualClock()
    revoked = _family(clock).revoke(clock.now(), RevocationCause.REVOKED)
    assert revoked.redeem("d0", "d1", clock.now()).refusal is RefreshRefusal.REVOKED
    again = revoked.revoke(clock.advance(timedelta(hours=1)), RevocationCause.REUSE_DETECTED)
    assert again == revoked


@pytest.mark.parametrize(
    ("absolute", "idle"),
    [(timedelta(days=1), timedelta(days=2)), (timedelta(days=1), timedelta(0))],
)
def test_a_policy_idles_out_within_its_lifetime(absolute: timedelta, idle: timedelta) -> None:
    with pytest.raises(ValueError, match="idle timeout"):
        RefreshPolicy(absolute_lifetime=absolute, idle_timeout=idle)
