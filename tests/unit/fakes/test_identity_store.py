"""The identity fakes keep the promises the SQL adapters will: a lost race is a conflict."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.refresh_families import RefreshFamily, RefreshPolicy, start_family
from ledgerd.identity.domain.scopes import Scope
from ledgerd.kernel.errors import ConcurrencyConflictError
from tests.fakes.clock import ManualClock
from tests.fakes.identity_store import FakeIdentityUnitOfWork, FakeRefreshFamilyRepository

POLICY = RefreshPolicy(absolute_lifetime=timedelta(days=30), idle_timeout=timedelta(days=7))


def _family(clock: ManualClock) -> RefreshFamily:
    return start_family(
        family_id="f1",
        client_id="c1",
        subject="alice",
        grant=AccessGrant(frozenset({Scope.LEDGER_READ}), frozenset({"main"})),
        policy=POLICY,
        first_digest="d0",
        now=clock.now(),
    )


async def test_an_update_from_a_stale_generation_is_a_conflict_and_rolls_back() -> None:
    clock = ManualClock()
    uow = FakeIdentityUnitOfWork()
    families = FakeRefreshFamilyRepository(uow)
    family = _family(clock)
    async with uow.begin() as tx:
        await families.add(family)
        await tx.commit()
    winner = family.redeem("d0", "d1", clock.now()).family
    loser = family.redeem("d0", "d2", clock.now()).family
    async with uow.begin() as tx:
        await families.update(winner, read_generation=family.generation)
        await tx.commit()

    with pytest.raises(ConcurrencyConflictError):
        async with uow.begin():
            await families.update(loser, read_generation=family.generation)

    async with uow.begin(read_only=True):
        # Both digests lead to the family, and the winner's token is its current one.
        assert await families.find_by_token_digest("d0") == winner
        assert await families.find_by_token_digest("d1") == winner
        assert await families.find_by_token_digest("d2") is None


async def test_repositories_refuse_to_run_outside_a_unit_of_work() -> None:
    families = FakeRefreshFamilyRepository(FakeIdentityUnitOfWork())
    with pytest.raises(RuntimeError, match="no unit of work"):
        await families.find_by_token_digest("d0")
