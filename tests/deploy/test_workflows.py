"""The GitHub Actions workflows, checked here since they only run on GitHub: actionlint (with
shellcheck on every ``run:`` script) and the workflow JSON schema accept them and refuse broken
copies; they hold together (CD follows CI, every job bounded, every action pinned); and they call
only what creditops has (make targets, CLI commands and options, HTTP routes, the fields of an
application). The model gate's script fails a version worse than its benchmark."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from creditops.cli import app as cli_app
from creditops.config import Settings
from creditops.data import load_builtin
from creditops.serving.app import create_app
from helpers import tool

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CI, CD = WORKFLOWS / "ci.yml", WORKFLOWS / "cd.yml"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    return tool(name, "`make install` installs it from PyPI")


def _actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck must be on PATH, or actionlint skips the run: scripts without a word.
    _tool("shellcheck")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [_tool("actionlint"), "-no-color", *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _schema(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
    )


def _load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on` as true
    return workflow


def _broken_copy(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text
    copy = tmp_path / ".github" / "workflows" / source.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(text.replace(old, new, 1))
    return copy


def _scripts(workflow: dict[str, Any]) -> list[str]:
    """Every run: script, continuation lines joined."""
    steps = [s for job in workflow["jobs"].values() for s in job.get("steps", [])]
    return [s["run"].replace("\\\n", " ") for s in steps if "run" in s]


def test_actionlint_passes_both_workflows() -> None:
    result = _actionlint(CI, CD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == result.stderr == ""


def test_both_workflows_follow_the_github_workflow_schema() -> None:
    result = _schema(CI, CD)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_refuses_a_needs_naming_a_missing_job(tmp_path: Path) -> None:
    bad = _broken_copy(tmp_path, CD, "needs: publish", "needs: publsh")
    result = _actionlint(bad)
    assert result.returncode != 0
    assert "publsh" in result.stdout


def test_actionlint_refuses_a_bad_expression_and_shellchecks_scripts(tmp_path: Path) -> None:
    bad = _broken_copy(
        tmp_path,
        CI,
        "cancel-in-progress: ${{ github.event_name == 'pull_request' }}",
        "cancel-in-progress: ${{ github.event_nam == 'pull_request' }}",
    )
    result = _actionlint(bad)
    assert result.returncode != 0
    assert "event_nam" in result.stdout
    unquoted = _broken_copy(tmp_path, CI, "- run: make lint", "- run: make $TARGET")
    result = _actionlint(unquoted)
    assert result.returncode != 0
    assert "SC2086" in result.stdout  # shellcheck ran on the step's script


def test_the_schema_refuses_a_misspelt_key(tmp_path: Path) -> None:
    bad = _broken_copy(tmp_path, CI, "timeout-minutes: 20", "timeout_minutes: 20")
    result = _schema(bad)
    assert result.returncode != 0
    assert "timeout_minutes" in result.stdout + result.stderr


def test_ci_runs_on_pull_requests_and_main_and_cd_only_after_ci_passed() -> None:
    ci, cd = _load(CI), _load(CD)
    assert set(ci["on"]) == {"pull_request", "push"}
    assert ci["on"]["push"]["branches"] == ["main"]
    assert ci["permissions"] == {"contents": "read"} == cd["permissions"]
    assert "pull_request" in ci["concurrency"]["cancel-in-progress"]
    assert set(ci["jobs"]) == {"lint", "test", "security", "image", "model-gate"}
    trigger = cd["on"]["workflow_run"]
    assert trigger == {"workflows": [ci["name"]], "types": ["completed"], "branches": ["main"]}
    assert cd["concurrency"]["cancel-in-progress"] is False
    publish = cd["jobs"]["publish"]
    assert "workflow_run.conclusion == 'success'" in publish["if"]
    assert "workflow_run.event == 'push'" in publish["if"]
    assert publish["permissions"] == {"contents": "read", "packages": "write"}
    assert cd["jobs"]["deploy"]["needs"] == "publish"
    checkout = publish["steps"][0]
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}"


def test_every_job_is_bounded_and_every_action_pinned() -> None:
    for path in (CI, CD):
        for name, job in _load(path)["jobs"].items():
            assert 0 < job["timeout-minutes"] <= 45, (path.name, name)
            for step in job["steps"]:
                if "uses" in step:
                    assert re.fullmatch(
                        r"[\w.-]+/[\w.-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", step["uses"]
                    ), step["uses"]
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False


def test_the_test_job_measures_coverage_and_keeps_the_report() -> None:
    test = _load(CI)["jobs"]["test"]
    assert test["env"]["PYTEST_ADDOPTS"] == "--cov --cov-report=xml --cov-report=term"
    assert any(s.get("run") == "make test" for s in test["steps"])
    upload = next(s for s in test["steps"] if s.get("uses", "").startswith("actions/upload"))
    assert upload["with"]["path"] == "coverage.xml"


def test_the_workflows_call_only_what_creditops_has() -> None:
    scripts = _scripts(_load(CI)) + _scripts(_load(CD))
    targets = set(re.findall(r"^([a-z-]+):.*##", (ROOT / "Makefile").read_text(), re.M))
    for script in scripts:
        for target in re.findall(r"\bmake ([a-z-]+)", script):
            assert target in targets, target
    commands = typer.main.get_command(cli_app).commands
    called = set()
    for script in scripts:
        for command, args in re.findall(
            r"(?:\.venv/bin/creditops|creditops:ci)[ \t]+([a-z][\w-]*)([^|>;&\n]*)", script
        ):
            called.add(command)
            options = {o for p in commands[command].params for o in p.opts + p.secondary_opts}
            assert set(re.findall(r"--[\w-]+", args)) <= options, (command, args)
    assert called == {"train", "evaluate", "report"}
    assert (ROOT / "scripts" / "model-gate.py").exists()
    routes = {getattr(r, "path", "") for r in create_app(Settings(), load_model=False).routes}
    probed = {
        path
        for script in scripts
        for path in re.findall(r"(?:127\.0\.0\.1:8000|\$CREDITOPS_URL)(/[\w/]*)", script)
    }
    assert probed == {"/health", "/ready", "/predict"}
    assert probed <= routes


def test_the_smoke_application_is_one_the_built_in_model_accepts() -> None:
    frame, spec = load_builtin("credit_data")
    fields = set(frame.columns) - {spec.target, spec.id}
    bodies = [
        json.loads(body)
        for s in _scripts(_load(CI)) + _scripts(_load(CD))
        for body in re.findall(r"-d '(\{.*?\})'", s, re.S)
    ]
    assert len(bodies) == 2
    for body in bodies:
        assert set(body) <= fields
        assert fields - set(body) <= set(spec.protected)  # features are all given


def _evaluation(version: str, auc: float, brier: float, age_di: float) -> dict[str, Any]:
    return {
        "model_version": version,
        "candidate": "c",
        "dataset": "credit_data",
        "data": {"split": {"test": 669}},
        "metrics": {
            "n": 669,
            "roc_auc": auc,
            "roc_auc_ci": [auc - 0.03, auc + 0.03],
            "brier": brier,
        },
        "fairness": {
            "attributes": [
                {
                    "attribute": "Age",
                    "kind": "attribute",
                    "disparate_impact_ratio": {"value": age_di},
                }
            ]
        },
        "fairness_gate": {"passed": age_di >= 0.8, "failures": []},
    }


@pytest.mark.parametrize(
    ("auc", "brier", "age_di", "code", "failed"),
    [
        (0.846, 0.138, 0.71, 0, None),
        (0.846, 0.138, 0.71, 1, "minimum_auc"),  # the floor below is above this AUC
        (0.840, 0.138, 0.71, 1, "auc_not_worse"),  # more than 0.005 below the benchmark
        (0.846, 0.150, 0.71, 1, "calibration_not_worse"),
        (0.846, 0.138, 0.55, 1, "fairness"),  # more than 0.02 below the benchmark's 0.62
    ],
)
def test_the_model_gate_fails_a_version_worse_than_its_benchmark(
    tmp_path: Path, auc: float, brier: float, age_di: float, code: int, failed: str | None
) -> None:
    champion, benchmark = tmp_path / "champion.json", tmp_path / "benchmark.json"
    champion.write_text(json.dumps(_evaluation("2", auc, brier, age_di)))
    benchmark.write_text(json.dumps(_evaluation("1", 0.847, 0.139, 0.62)))
    env = {k: v for k, v in os.environ.items() if k != "CREDITOPS_MONITORING_CONFIG"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    gate = ROOT / "scripts" / "model-gate.py"
    result = subprocess.run(
        [
            sys.executable,
            str(gate),
            str(champion),
            "--benchmark",
            str(benchmark),
            "--min-auc",
            "0.85" if failed == "minimum_auc" else "0.80",
        ],
        capture_output=True,
        text=True,
        env={**env, "CREDITOPS_HOME": str(tmp_path)},
    )
    assert result.returncode == code, result.stdout + result.stderr
    if failed is not None:
        assert f"[FAIL] {failed}:" in result.stdout
    assert "auc_tolerance 0.005" in result.stdout  # the configured promotion tolerance
