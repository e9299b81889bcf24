"""The open-file limit: raised to the hard limit once at start-up, and said so."""

from __future__ import annotations

import logging
import resource
from collections.abc import Iterator

import pytest

from ledgerd.platform.file_limit import open_file_limit, raise_file_limit

LOWERED = 200


@pytest.fixture
def lowered_file_limit() -> Iterator[int]:
    """The soft limit of the test process set to LOWERED (then put back); yields the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= LOWERED:
        pytest.skip(f"the hard file limit ({hard}) leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOWERED, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_soft_limit_is_raised_to_the_hard_limit_and_logged(
    lowered_file_limit: int, caplog: pytest.LogCaptureFixture
) -> None:
    hard = lowered_file_limit
    assert open_file_limit() == LOWERED
    with caplog.at_level(logging.INFO, logger="ledgerd.platform.file_limit"):
        raise_file_limit()
        raise_file_limit()  # already there: said so, nothing changes
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    shown = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    assert [record.getMessage() for record in caplog.records] == [
        f"open file limit raised from {LOWERED} to {shown} (the hard limit)",
        f"open file limit {shown} (the hard limit)",
    ]
