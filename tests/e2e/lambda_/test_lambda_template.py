"""deploy/lambda/template.yaml: valid for CloudFormation (cfn-lint) and true to the code.

cfn-lint expands the SAM transform and checks the result against CloudFormation's resource
schemas; the other checks tie the template to what it names here: the handler, the settings,
the package ``make lambda-zip`` builds, the Python it is built for.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from ledgerd.main.settings import Settings
from tests.conftest import service_unavailable

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "deploy" / "lambda" / "template.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
LINT_TIMEOUT_S = 120


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) read as {"Tag": value}."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


_CloudFormationLoader.add_multi_constructor("!", _tagged)


def _template() -> dict[str, Any]:
    text = TEMPLATE.read_text()
    loaded: dict[str, Any] = yaml.load(text, Loader=_CloudFormationLoader)  # noqa: S506 - safe
    return loaded


def _function() -> dict[str, Any]:
    properties: dict[str, Any] = _template()["Resources"]["LedgerdFunction"]["Properties"]
    return properties


def _lint(path: Path) -> list[dict[str, Any]]:
    if not CFN_LINT.exists():
        service_unavailable("cfn-lint is not installed (the dev group has it)")
    done = subprocess.run(  # noqa: S603 - the dev group's cfn-lint, fixed arguments
        [str(CFN_LINT), "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=LINT_TIMEOUT_S,
        check=False,
    )
    assert done.returncode in {0, 2, 4, 6, 8, 10, 12, 14}, done.stderr  # bit flags of findings
    findings: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return findings


def test_cfn_lint_finds_nothing_in_the_template() -> None:
    assert [(f["Rule"]["Id"], f["Message"]) for f in _lint(TEMPLATE)] == []


def test_cfn_lint_catches_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("MemorySize: 1024", "MemorySize: 64"))
    assert [finding["Rule"]["Id"] for finding in _lint(broken)] == ["E3034"]


def test_the_handler_it_names_is_ours() -> None:
    module, _dot, name = _function()["Handler"].rpartition(".")
    assert module == "ledgerd.main.lambda_handler"
    assert callable(getattr(importlib.import_module(module), name))


def test_every_variable_it_sets_is_a_setting() -> None:
    variables = _function()["Environment"]["Variables"]
    names = {name.removeprefix("LEDGERD_").lower() for name in variables}
    assert all(name.startswith("LEDGERD_") for name in variables)
    assert names <= set(Settings.model_fields)


def test_it_deploys_what_make_lambda_zip_builds_for_its_runtime() -> None:
    function = _function()
    makefile = (ROOT / "Makefile").read_text()
    build = re.search(r"^LAMBDA_BUILD := (\S+)$", makefile, re.MULTILINE)
    python = re.search(r"^LAMBDA_PYTHON \?= (\S+)$", makefile, re.MULTILINE)
    assert build is not None
    assert python is not None
    assert (TEMPLATE.parent / function["CodeUri"]).resolve() == (
        ROOT / build.group(1) / "ledgerd-lambda.zip"
    )
    assert function["Runtime"] == f"python{python.group(1)}"
    assert function["Architectures"] == ["x86_64"]  # LAMBDA_PLATFORM's default
    assert "LAMBDA_PLATFORM ?= x86_64-" in makefile
