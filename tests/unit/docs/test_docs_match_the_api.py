"""The docs spell what the API spells, and cite only what the repository holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf.descriptor import EnumDescriptor

from ledgerd.v1 import ledger_pb2

ROOT = Path(__file__).resolve().parents[3]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

ENUMS = [
    ledger_pb2.Account.Status.DESCRIPTOR,
    ledger_pb2.Transfer.Kind.DESCRIPTOR,
    ledger_pb2.Transfer.Status.DESCRIPTOR,
]


def _values(enum: EnumDescriptor) -> list[str]:
    return [value.name for value in enum.values if not value.name.endswith("_UNSPECIFIED")]


@pytest.mark.parametrize("enum", ENUMS, ids=lambda enum: enum.full_name)
def test_the_ledger_model_names_every_enum_value_as_the_api_does(enum: EnumDescriptor) -> None:
    page = (ROOT / "docs" / "ledger-model.md").read_text(encoding="utf-8")
    assert [name for name in _values(enum) if f"`{name}`" not in page] == []
    # `pending` for the HOLD kind, `open` for OPEN: a client author would send those and fail.
    assert [name for name in _values(enum) if f"`{name.lower()}`" in page] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_docs_cite_no_file_outside_the_repository(page: Path) -> None:
    cited = re.findall(r"\b[A-Z][A-Z_]+\.md\b", page.read_text(encoding="utf-8"))
    assert [name for name in cited if not any(ROOT.glob(f"**/{name}"))] == []
