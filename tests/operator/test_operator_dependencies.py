"""The operator runs on ledgerd's runtime dependencies plus its own extra, nothing from dev.

The same check as tests/unit/test_runtime_dependencies.py, for src/ledgerd_operator: with
`pip install 'ledgerd[operator]'` every module it imports at run time is installed, and the
server's install (no extra) carries no kopf.
"""

import ast
import tomllib
from importlib.metadata import packages_distributions

from tests.unit.test_runtime_dependencies import (
    ROOT,
    _normalized,
    _run_time_imports,
    _runtime_closure,
)

OPERATOR_SOURCES = ROOT / "src" / "ledgerd_operator"


def test_the_operator_imports_only_what_its_extra_installs() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    allowed = _runtime_closure(lock, ("operator",))
    providers = packages_distributions()
    outside: dict[str, list[str]] = {}
    imported: set[str] = set()
    for path in sorted(OPERATOR_SOURCES.rglob("*.py")):
        modules = _run_time_imports(ast.parse(path.read_text(encoding="utf-8")))
        for module in modules - {"ledgerd_operator"}:
            imported.add(module)
            distributions = {_normalized(name) for name in providers.get(module, [module])}
            if not distributions & allowed:
                outside.setdefault(module, []).append(path.name)
    assert {"kopf", "aiohttp"} <= imported  # the walk does find imports
    assert outside == {}, f"the operator imports what its extra does not install: {outside}"


def test_the_server_install_carries_no_kopf() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    assert "kopf" not in _runtime_closure(lock)
    assert "kopf" in _runtime_closure(lock, ("operator",))
