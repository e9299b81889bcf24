"""The fault suite: every test here carries the ``faults`` marker, and may report figures.

``pytest -m faults`` runs the suite alone, ``-m "not faults"`` leaves it out. A test that
measures something (requests, acknowledged, lost, recovery time...) hands its summary to the
``fault_figures`` fixture; the lines are printed at the end of the run, under "fault figures",
so they show without ``-s`` and whether the test passed or failed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).parent
_FIGURES = pytest.StashKey[list[str]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Called with the whole session's items, whichever conftest defines it: mark only ours.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def fault_figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Report a test's figures: ``fault_figures(text)`` prints ``text`` after the run."""
    lines = request.config.stash.setdefault(_FIGURES, [])

    def report(text: str) -> None:
        lines.append(f"{request.node.nodeid}\n{text}")

    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.section("fault figures")
        for text in lines:
            terminalreporter.write_line(text)
