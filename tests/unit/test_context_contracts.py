"""The import contracts cover every bounded context, including one added tomorrow.

The contracts in pyproject.toml name contexts by wildcard (``ledgerd.*.domain``, ...), so they
hold for any direct subpackage of ``ledgerd`` that is not a shared package. These tests check
the two halves of that promise:

- on the real tree, every such folder *is* a context (its layers and nothing else), and no
  contract names a context: the independence contract too covers ``ledgerd.*`` and lets
  through only the imports into shared packages and published ones;
- on a copy of the tree with a throwaway ``billing`` context, ``lint-imports`` keeps every
  contract for the well-formed context and breaks the right one for each layer violation,
  without a line of pyproject.toml changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "src" / "ledgerd"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# The packages every context may lean on; any other direct subpackage of ledgerd is a context.
SHARED_PACKAGES = frozenset(
    {"gateway", "kernel", "loadgen", "main", "migrations", "platform", "v1"}
)
CONTEXT_LAYERS = frozenset({"domain", "application", "published", "adapters", "entrypoints"})
REQUIRED_LAYERS = frozenset({"domain", "application"})


def context_folders(package: Path) -> set[str]:
    """The contexts under a ``ledgerd`` source folder: its packages that are not shared."""
    return {
        child.name
        for child in package.iterdir()
        if (child / "__init__.py").is_file() and child.name not in SHARED_PACKAGES
    }


def _contracts(pyproject: Path) -> dict[str, dict[str, Any]]:
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return {contract["id"]: contract for contract in contracts}


def test_every_non_shared_package_is_a_context_made_of_layers() -> None:
    contexts = context_folders(SOURCES)
    assert contexts, "no context found: the shared-package list is out of date"
    for context in sorted(contexts):
        children = {
            child.name
            for child in (SOURCES / context).iterdir()
            if child.name not in {"__init__.py", "__pycache__"}
        }
        assert children <= CONTEXT_LAYERS, f"{context} holds non-layer modules: {children}"
        assert children >= REQUIRED_LAYERS, f"{context} lacks {REQUIRED_LAYERS - children}"


def test_the_independence_contract_lets_through_only_what_contexts_may_share() -> None:
    """Every package is in the set; the ignored imports lead into shared or published code.

    The one exception is the composition root, which imports every context by design (and
    which another contract keeps everyone else from importing).
    """
    independence = _contracts(ROOT / "pyproject.toml")["contexts-independent"]
    assert independence["modules"] == ["ledgerd.*"]
    may_import_anything = {"ledgerd.main", "ledgerd.main.**"}
    for ignored in independence["ignore_imports"]:
        importer, imported = (side.strip() for side in ignored.split("->"))
        if importer in may_import_anything:
            continue
        assert importer == "ledgerd.**", ignored
        target = imported.removeprefix("ledgerd.").removesuffix(".**").split(".")
        shared = target[0] in SHARED_PACKAGES - {"main", "migrations", "gateway", "loadgen"}
        assert shared or target == ["*", "published"], ignored


def test_no_contract_names_a_context() -> None:
    """Layer and independence rules name contexts by wildcard: a new context edits none."""
    for contract_id, contract in _contracts(ROOT / "pyproject.toml").items():
        named = repr(contract)
        for context in context_folders(SOURCES):
            assert f"ledgerd.{context}" not in named, f"{contract_id} names ledgerd.{context}"


# --- a throwaway context in a copy of the tree ---------------------------------------------------

_BILLING = {
    "__init__.py": "",
    "domain/__init__.py": "",
    "domain/invoice.py": (
        "from ledgerd.kernel.money import MAX_AMOUNT\n\nINVOICE_UNIT = MAX_AMOUNT\n"
    ),
    "application/__init__.py": "",
    "application/issue_invoice.py": (
        "from ledgerd.billing.domain.invoice import INVOICE_UNIT\n"
        "from ledgerd.platform.concurrency import Once\n\n"
        "ISSUED = (INVOICE_UNIT, Once)\n"
    ),
    "adapters/__init__.py": "",
    "adapters/sql_invoices.py": (
        "import sqlalchemy\n\nfrom ledgerd.billing.application.issue_invoice import ISSUED\n\n"
        "TABLE = (sqlalchemy.MetaData(), ISSUED)\n"
    ),
}

# (what the throwaway context does wrong, the module it is added to, the contract it breaks)
_VIOLATIONS = [
    ("import sqlalchemy\n", "domain/invoice.py", "pure-core-external"),
    ("import ledgerd.billing.adapters.sql_invoices\n", "domain/invoice.py", "context-layers"),
    ("import ledgerd.billing.application.issue_invoice\n", "domain/invoice.py", "context-layers"),
    ("import ledgerd.platform.db\n", "domain/invoice.py", "pure-core-internal"),
    (
        "import ledgerd.platform.db.engine\n",
        "application/issue_invoice.py",
        "application-without-db",
    ),
    (
        "import ledgerd.platform.outbox.writer\n",
        "application/issue_invoice.py",
        "application-platform-allowance",
    ),
    ("import ledgerd.billing.adapters\n", "application/issue_invoice.py", "context-layers"),
    (
        "import ledgerd.ledger.application.create_ledger\n",
        "application/issue_invoice.py",
        "contexts-independent",
    ),
    (
        "import ledgerd.billing.domain.invoice\n",
        "../platform/billing_probe.py",
        "platform-below-contexts",
    ),
]


def _tree_with_billing(tmp_path: Path) -> Path:
    """A copy of src/ledgerd and pyproject.toml with a well-formed ``billing`` context added.

    The contracts are copied unchanged: every one covers ``billing`` by wildcard.
    """
    shutil.copytree(
        SOURCES, tmp_path / "src" / "ledgerd", ignore=shutil.ignore_patterns("__pycache__")
    )
    for relative, text in _BILLING.items():
        module = tmp_path / "src" / "ledgerd" / "billing" / relative
        module.parent.mkdir(parents=True, exist_ok=True)
        module.write_text(text, encoding="utf-8")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(tree: Path, *contract_ids: str) -> subprocess.CompletedProcess[str]:
    selected = [
        argument for contract_id in contract_ids for argument in ("--contract", contract_id)
    ]
    # PYTHONPATH puts the copy ahead of the editable install, so grimp reads the copy.
    environment = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run(  # noqa: S603 - the venv's lint-imports, fixed arguments
        [str(LINT_IMPORTS), "--no-cache", str(tree / "pyproject.toml"), *selected],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_well_formed_new_context_keeps_every_contract(tmp_path: Path) -> None:
    tree = _tree_with_billing(tmp_path)
    assert context_folders(tree / "src" / "ledgerd") == context_folders(SOURCES) | {"billing"}
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


@pytest.mark.parametrize(("line", "module", "contract_id"), _VIOLATIONS)
def test_a_new_context_is_covered_the_moment_its_folder_exists(
    tmp_path: Path, line: str, module: str, contract_id: str
) -> None:
    tree = _tree_with_billing(tmp_path)
    target = tree / "src" / "ledgerd" / "billing" / module
    existing = target.read_text(encoding="utf-8") if target.exists() else ""
    target.write_text(line + existing, encoding="utf-8")

    result = _lint(tree, contract_id)

    assert result.returncode != 0, f"{contract_id} kept:\n{result.stdout}{result.stderr}"
    assert "BROKEN" in result.stdout, result.stdout + result.stderr
    assert "ledgerd.billing" in result.stdout, result.stdout
