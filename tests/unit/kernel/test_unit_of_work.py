import pytest

from ledgerd.kernel.errors import ConcurrencyConflictError, LedgerdError
from ledgerd.kernel.unit_of_work import DEFAULT_ATTEMPTS, retry_on_conflict
from ledgerd.ledger.domain.errors import LedgerErrorCode


class FlakyAttempt:
    """Loses ``losses`` races, then returns how many calls it took."""

    def __init__(self, losses: int) -> None:
        self.losses = losses
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.losses:
            msg = f"lost race #{self.calls}"
            raise ConcurrencyConflictError(msg)
        return self.calls


async def test_returns_at_once_without_conflict() -> None:
    attempt = FlakyAttempt(0)

    assert await retry_on_conflict(attempt) == 1
    assert attempt.calls == 1


async def test_retries_until_an_attempt_wins() -> None:
    attempt = FlakyAttempt(DEFAULT_ATTEMPTS - 1)

    assert await retry_on_conflict(attempt) == DEFAULT_ATTEMPTS
    assert attempt.calls == DEFAULT_ATTEMPTS


async def test_gives_up_after_the_last_attempt_with_its_error() -> None:
    attempt = FlakyAttempt(100)

    with pytest.raises(ConcurrencyConflictError, match="lost race #3"):
        await retry_on_conflict(attempt, attempts=3)
    assert attempt.calls == 3


async def test_other_errors_are_not_retried() -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise LedgerdError(LedgerErrorCode.INSUFFICIENT_FUNDS, "no")

    with pytest.raises(LedgerdError) as caught:
        await retry_on_conflict(failing)
    assert caught.value.code is LedgerErrorCode.INSUFFICIENT_FUNDS
    assert calls == 1


async def test_needs_at_least_one_attempt() -> None:
    attempt = FlakyAttempt(0)

    with pytest.raises(ValueError, match="at least 1"):
        await retry_on_conflict(attempt, attempts=0)
    assert attempt.calls == 0
