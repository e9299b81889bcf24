"""docs/api.md's error table is the catalogue the transports answer with."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from ledgerd.kernel.errors import ErrorCode
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.main.error_codes import ERROR_CODES
from ledgerd.platform.api.error_docs import BEGIN_MARKER, END_MARKER, with_error_table

API_PAGE = Path(__file__).resolve().parents[4] / "docs" / "api.md"


def _row(page: str, code: StrEnum) -> str:
    return next(line for line in page.splitlines() if line.startswith(f"| `{code}` |"))


def test_the_api_page_holds_the_current_table() -> None:
    page = API_PAGE.read_text(encoding="utf-8")
    assert BEGIN_MARKER in page
    # what `tools/generate.py --check` also checks
    assert with_error_table(page, ERROR_CODES) == page


def test_the_table_gives_each_code_its_grpc_and_http_status() -> None:
    page = API_PAGE.read_text(encoding="utf-8")
    assert "| FAILED_PRECONDITION | 422 Unprocessable Entity |" in _row(
        page, LedgerErrorCode.ASSET_MISMATCH
    )
    assert "| ALREADY_EXISTS | 409 Conflict |" in _row(page, LedgerErrorCode.IDEMPOTENCY_CONFLICT)
    assert "gRPC OK (HTTP 200)" in _row(page, LedgerErrorCode.BATCH_ABORTED)


def test_the_table_has_a_row_per_registered_code() -> None:
    page = API_PAGE.read_text(encoding="utf-8")
    table = page[page.index(BEGIN_MARKER) : page.index(END_MARKER)]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [str(code) for code, _ in ERROR_CODES]


def test_a_stale_table_is_replaced_whole() -> None:
    stale = f"intro\n\n{BEGIN_MARKER}\n| old | rows |\n{END_MARKER}\n\nrest\n"
    fresh = with_error_table(stale, ERROR_CODES)
    assert "| old | rows |" not in fresh
    assert fresh.startswith("intro\n\n")
    assert fresh.endswith("\n\nrest\n")
    assert _row(fresh, ErrorCode.OUTCOME_UNKNOWN).startswith("| `OUTCOME_UNKNOWN` | UNAVAILABLE |")
