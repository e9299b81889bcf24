"""Which accounts each transfer moves money between, per workload.

Account ids are ``acct-00000`` … in id order. ``hot`` makes ``acct-00000`` one side of every
transfer (alternating sides, so its balance hovers near zero). ``zipf`` draws both sides from
a Zipf distribution whose ranks are scattered over the ids by a seeded permutation, so the
busiest accounts are not all first in lock order.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import random
from dataclasses import dataclass

from ledgerd.loadgen.config import Workload

MIN_AMOUNT = 1
MAX_AMOUNT = 10_000
HOT_ACCOUNT = 0


def account_id(index: int) -> str:
    return f"acct-{index:05d}"


@functools.cache
def account_ids(count: int) -> tuple[str, ...]:
    """Shared by every client of a process (64 copies of 10,000 ids would be tens of MB)."""
    return tuple(account_id(index) for index in range(count))


@dataclass(frozen=True, slots=True)
class Movement:
    debit: str
    credit: str
    amount: int


class ZipfSampler:
    """Ranks 0..n-1 with P(rank k) proportional to 1 / (k+1)**exponent, mapped to indices."""

    def __init__(self, n: int, exponent: float, seed: int) -> None:
        weights = (1.0 / (rank + 1) ** exponent for rank in range(n))
        self._cumulative = list(itertools.accumulate(weights))
        self._indices = list(range(n))
        random.Random(seed).shuffle(self._indices)  # noqa: S311 - load shape, not a secret

    def sample(self, rng: random.Random) -> int:
        point = rng.random() * self._cumulative[-1]
        rank = min(bisect.bisect_right(self._cumulative, point), len(self._indices) - 1)
        return self._indices[rank]


class MovementSource:
    """An endless supply of movements for one client (each client has its own generator)."""

    def __init__(
        self, workload: Workload, accounts: int, rng: random.Random, zipf: ZipfSampler | None
    ) -> None:
        self._workload = workload
        self._n = accounts
        self._rng = rng
        self._zipf = zipf
        self._ids = account_ids(accounts)
        self._flip = False

    def next(self) -> Movement:
        debit, credit = self._pair()
        return Movement(
            self._ids[debit], self._ids[credit], self._rng.randint(MIN_AMOUNT, MAX_AMOUNT)
        )

    def _pair(self) -> tuple[int, int]:
        rng = self._rng
        if self._workload is Workload.HOT:
            other = 1 + rng.randrange(self._n - 1)
            self._flip = not self._flip
            return (HOT_ACCOUNT, other) if self._flip else (other, HOT_ACCOUNT)
        if self._zipf is not None:  # the zipf workload
            first = self._zipf.sample(rng)
            second = self._zipf.sample(rng)
            while second == first:
                second = self._zipf.sample(rng)
            return first, second
        first = rng.randrange(self._n)
        second = rng.randrange(self._n - 1)
        return first, second + (second >= first)


@functools.cache
def _zipf_sampler(accounts: int, exponent: float) -> ZipfSampler:
    """One per process and shape: every client draws from the same ranking (read-only)."""
    return ZipfSampler(accounts, exponent, seed=accounts)


def movement_source(
    workload: Workload, accounts: int, *, seed: int, zipf_exponent: float
) -> MovementSource:
    """The source for one client; ``seed`` differs per client, the Zipf ranking does not."""
    zipf = _zipf_sampler(accounts, zipf_exponent) if workload is Workload.ZIPF else None
    rng = random.Random(seed)  # noqa: S311 - a reproducible load, not a secret
    return MovementSource(workload, accounts, rng, zipf)
