"""The forge pipelines run what ``.ci/run`` runs, so the three cannot drift apart.

``.ci/run`` is the reference: the make targets it calls, the Debian packages it installs and
``LEDGERD_REQUIRE_SERVICES=1``. GitHub Actions (``.github/workflows/ci.yml``) and GitLab CI
(``.gitlab-ci.yml``) must call the same targets in the same order, install the same packages,
require the services, and point every ``LEDGERD_TEST_*_URL`` the tests read at a service.
Their syntax is checked by ``make lint`` (actionlint and GitLab's schema); this is the meaning.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CI_RUN = ROOT / ".ci" / "run"
GITHUB = ROOT / ".github" / "workflows" / "ci.yml"
GITLAB = ROOT / ".gitlab-ci.yml"

# Targets a pipeline may call that .ci/run does not: `install` as a step of its own (in
# .ci/run the other targets bring it in), and `image`, built and published by a job of its own.
PIPELINE_ONLY_TARGETS = frozenset({"install", "image"})
# GitLab's top-level keys that are settings, not jobs.
GITLAB_GLOBAL_KEYS = frozenset(
    {"default", "include", "stages", "variables", "workflow", "image", "services", "cache"}
)
SERVICE_URL_ENV = re.compile(r"\bLEDGERD_TEST_[A-Z]+_URL\b")
SHELL_PUNCTUATION = ";&|()"
SHELL_KEYWORDS = frozenset({"if", "then", "else", "elif", "while", "until", "do", "!", "exec"})
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Job:
    """One job of a pipeline: its shell lines and the environment it declares."""

    name: str
    commands: tuple[str, ...]
    env: Mapping[str, str]


def shell_commands(script: Iterable[str]) -> Iterator[list[str]]:
    """Each simple command of ``script`` as words: `a && b; c || d` is three.

    Continuation lines are joined, comments and the keywords and variable assignments before
    a command are left out, so `if ! X=1 make lint; then` reads as `make lint`.
    """
    for line in "\n".join(script).replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set(SHELL_PUNCTUATION):
                while words and (words[0] in SHELL_KEYWORDS or ASSIGNMENT.match(words[0])):
                    words.pop(0)
                if words:
                    yield words
                words = []
            else:
                words.append(token)


def make_targets(script: Iterable[str]) -> list[str]:
    """The targets of every ``make`` command in ``script``, in order (options left out)."""
    targets: list[str] = []
    for words in shell_commands(script):
        if words[:1] == ["make"]:
            targets += [word for word in words[1:] if not word.startswith("-") and "=" not in word]
    return targets


def apt_packages(script: Iterable[str], env: Mapping[str, str]) -> set[str]:
    """The packages named by ``apt-get install`` in ``script``, ``$VARIABLES`` expanded."""
    packages: set[str] = set()
    for words in shell_commands(script):
        if words[:2] != ["apt-get", "install"]:
            continue
        for word in words[2:]:
            if word.startswith("$"):
                packages |= set(env[word.lstrip("${").rstrip("}")].split())
            elif not word.startswith("-"):
                packages.add(word)
    return packages


def ci_run_lines() -> list[str]:
    return CI_RUN.read_text(encoding="utf-8").splitlines()


def ci_run_exports() -> dict[str, str]:
    exports: dict[str, str] = {}
    for words in shell_commands(ci_run_lines()):
        if words[:1] == ["export"]:
            for word in words[1:]:
                name, _, value = word.partition("=")
                exports[name] = value
    return exports


def _strings(value: object) -> list[str]:
    """A YAML script entry (absent, one string or a list of them) as a list of strings."""
    if isinstance(value, list):
        return [str(item) for item in value]
    return [] if value is None else [str(value)]


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def github_jobs() -> Iterator[Job]:
    workflow = _load(GITHUB)
    for name, job in workflow["jobs"].items():
        env = {**workflow.get("env", {}), **job.get("env", {})}
        commands: list[str] = []
        for step in job["steps"]:
            commands += _strings(step.get("run"))
            env.update(step.get("env", {}))
        yield Job(name, tuple(commands), {key: str(value) for key, value in env.items()})


def gitlab_jobs() -> Iterator[Job]:
    pipeline = _load(GITLAB)
    templates = {name: body for name, body in pipeline.items() if name.startswith(".")}
    for name, body in pipeline.items():
        if name.startswith(".") or name in GITLAB_GLOBAL_KEYS:
            continue
        # `extends`, one level deep, which is all this file uses: the job's own keys win.
        job = {**templates.get(body.get("extends", ""), {}), **body}
        env = {**pipeline.get("variables", {}), **job.get("variables", {})}
        commands = [
            *_strings(job.get("before_script")),
            *_strings(job.get("script")),
            *_strings(job.get("after_script")),
        ]
        yield Job(name, tuple(commands), {key: str(value) for key, value in env.items()})


PIPELINES = {"github": github_jobs, "gitlab": gitlab_jobs}


def pipeline_jobs(forge: str) -> list[Job]:
    return list(PIPELINES[forge]())


def the_test_job(forge: str) -> Job:
    """The job that runs .ci/run's targets (the one that calls `make test`)."""
    [job] = [job for job in pipeline_jobs(forge) if "test" in make_targets(job.commands)]
    return job


def test_ci_run_is_read_as_the_reference() -> None:
    # If .ci/run stopped calling make, the comparisons below would compare nothing.
    assert {"lint", "test"} <= set(make_targets(ci_run_lines()))
    assert ci_run_exports()["LEDGERD_REQUIRE_SERVICES"] == "1"
    assert "curl" in apt_packages(ci_run_lines(), {})


@pytest.mark.parametrize("forge", sorted(PIPELINES))
def test_the_test_job_calls_ci_runs_targets_in_order(forge: str) -> None:
    called = [
        target
        for target in make_targets(the_test_job(forge).commands)
        if target not in PIPELINE_ONLY_TARGETS or target in make_targets(ci_run_lines())
    ]
    assert called == make_targets(ci_run_lines())


@pytest.mark.parametrize("forge", sorted(PIPELINES))
def test_every_target_a_pipeline_calls_is_ci_runs_or_its_own(forge: str) -> None:
    allowed = set(make_targets(ci_run_lines())) | PIPELINE_ONLY_TARGETS
    for job in pipeline_jobs(forge):
        assert set(make_targets(job.commands)) <= allowed, job.name


@pytest.mark.parametrize("forge", sorted(PIPELINES))
def test_the_image_is_built_by_make_and_pushed_only_on_tags(forge: str) -> None:
    [job] = [job for job in pipeline_jobs(forge) if "image" in make_targets(job.commands)]
    pushes = [words for words in shell_commands(job.commands) if words[:1] == ["buildah"]]
    assert any("push" in words for words in pushes)
    text = (GITHUB if forge == "github" else GITLAB).read_text(encoding="utf-8")
    tag_condition = "refs/tags/v" if forge == "github" else "CI_COMMIT_TAG"
    assert tag_condition in text


@pytest.mark.parametrize("forge", sorted(PIPELINES))
def test_every_job_installs_the_debian_packages_ci_run_installs(forge: str) -> None:
    wanted = apt_packages(ci_run_lines(), ci_run_exports())
    for job in pipeline_jobs(forge):
        assert wanted <= apt_packages(job.commands, job.env), job.name


@pytest.mark.parametrize("forge", sorted(PIPELINES))
def test_the_test_job_requires_services_as_ci_run_does(forge: str) -> None:
    assert the_test_job(forge).env.get("LEDGERD_REQUIRE_SERVICES") == "1"


@pytest.mark.parametrize("forge", sorted(PIPELINES))
def test_every_service_the_tests_read_is_given_to_the_test_job(forge: str) -> None:
    # A service container is another host: a test left on its 127.0.0.1 default would fail.
    read_by_tests = {
        name
        for path in (ROOT / "tests").rglob("*.py")
        for name in SERVICE_URL_ENV.findall(path.read_text(encoding="utf-8"))
    }
    assert read_by_tests, "the tests read no LEDGERD_TEST_*_URL: is the pattern stale?"
    assert read_by_tests <= set(the_test_job(forge).env)


@pytest.mark.parametrize("forge", sorted(PIPELINES))
def test_uvs_cache_is_kept_per_lock_file(forge: str) -> None:
    if forge == "github":
        caches = [
            step["with"]
            for job in _load(GITHUB)["jobs"].values()
            for step in job["steps"]
            if str(step.get("uses", "")).startswith("actions/cache@")
        ]
        assert caches
        assert all("hashFiles('uv.lock')" in cache["key"] for cache in caches)
        assert all(cache["path"] == "~/.cache/uv" for cache in caches)
    else:
        cache = _load(GITLAB)[".debian"]["cache"]
        assert cache["key"]["files"] == ["uv.lock"]
        variables = _load(GITLAB)["variables"]
        assert cache["paths"] == [variables["UV_CACHE_DIR"].removeprefix("$CI_PROJECT_DIR/") + "/"]
