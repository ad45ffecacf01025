"""A version's decision policy is made once, when it is registered, and only read afterwards;
a version registered without one (by an older creditops) gets it written once, by whichever
process meets it first. Trained through the CLI, as a user would, from a directory that must stay
empty: artifacts belong under CREDITOPS_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow import MlflowClient

from creditops.config import Settings
from creditops.evaluation.business import derive_policy
from creditops.registry import (
    load_model,
    load_version_data,
    register_model,
    stored_policy,
    version_policy,
)
from creditops.registry import policy as policy_module
from creditops.serving.served import build_served_model
from creditops.training.tracking import POLICY_FILE

pytestmark = pytest.mark.slow

_ENV_DROP = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CREDITOPS_HOME")


def _environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    return {**env, "CREDITOPS_HOME": str(home), **extra}


@pytest.fixture(scope="module")
def cli_trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path, dict]:
    """Two candidates trained by `creditops train` run from an empty directory, with the
    tracking URI given explicitly (the default file, spelled out)."""
    home = tmp_path_factory.mktemp("home")
    workdir = tmp_path_factory.mktemp("elsewhere")
    uri = f"sqlite:///{home}/mlflow.db"
    command = [
        *(sys.executable, "-m", "creditops.cli", "train", "--profile", "fast", "--json"),
        *("--model", "logistic_regression", "--model", "pca_logistic"),
    ]
    done = subprocess.run(
        command,
        cwd=workdir,
        env=_environment(home, MLFLOW_TRACKING_URI=uri),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    return Settings(home=home), workdir, summary  # the same store, by its default URI


def test_training_from_another_directory_leaves_it_empty(cli_trained):
    settings, workdir, _ = cli_trained
    assert sorted(p.name for p in workdir.iterdir()) == []
    assert any((settings.home / "artifacts").rglob("MLmodel"))


def test_the_registered_version_carries_the_policy_training_derived(cli_trained, monkeypatch):
    settings, _, summary = cli_trained
    loaded = load_model(settings)
    policy = stored_policy(settings, loaded)
    assert policy is not None
    assert policy.model_dump(mode="json") == summary["policy"]
    assert loaded.tags["policy_approve_below"] == f"{policy.approve_below:.6g}"
    assert loaded.tags["policy_decline_at_or_above"] == f"{policy.decline_at_or_above:.6g}"

    # It is the policy derived on the version's validation split, by the one derivation.
    data = load_version_data(settings, loaded)
    validation, y = data.part("validation", loaded.spec)
    proba = loaded.model.predict_proba(validation[loaded.spec.features])[:, 1]
    assert derive_policy(y, proba, validation, loaded.spec, data.frame) == policy

    # Serving reads it and derives nothing while it starts.
    def refuse(*_: object) -> None:
        raise AssertionError("a serving worker derived a policy")

    monkeypatch.setattr(policy_module, "_derive", refuse)
    served = build_served_model(settings)
    assert served.policy == policy


_DERIVE_ONCE = textwrap.dedent(
    """
    import json, sys, time
    from creditops.config import Settings
    from creditops.registry import load_model, version_policy
    from creditops.registry import policy as module

    marker, version = sys.argv[1], sys.argv[2]
    derive = module._derive

    def counted(settings, loaded):
        with open(marker, "a") as handle:
            handle.write("derived\\n")
        time.sleep(1.0)  # long enough for the other process to reach the lock
        return derive(settings, loaded)

    module._derive = counted
    settings = Settings()
    policy = version_policy(settings, load_model(settings, version))
    print(policy.model_dump_json())
    """
)


def test_a_version_registered_without_a_policy_gets_it_once(cli_trained, tmp_path):
    settings, _, summary = cli_trained
    other = next(c for c in summary["candidates"] if not c["champion"])
    # Registered as an older creditops did: the model and its tags, no policy.
    tags = {"parent_run_id": summary["parent_run_id"], "candidate": other["name"], "seed": 42}
    version = register_model(other["model_uri"], settings, alias=None, tags=tags)
    loaded = load_model(settings, version)
    assert stored_policy(settings, loaded) is None

    marker = tmp_path / "derivations.txt"
    env = _environment(settings.home, MLFLOW_TRACKING_URI=settings.resolved_tracking_uri)
    script = [sys.executable, "-c", _DERIVE_ONCE, str(marker), version]
    processes = [
        subprocess.Popen(script, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    policies = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert policies[0] == policies[1]
    assert marker.read_text().splitlines() == ["derived"]  # one process derived, one read

    # Stored on the version's run and as its tags; every later reader gets that one.
    again = load_model(settings, version)
    assert stored_policy(settings, again).model_dump(mode="json") == policies[0]
    assert again.tags["policy_approve_below"] == f"{policies[0]['approve_below']:.6g}"
    client = MlflowClient(settings.resolved_tracking_uri)
    assert POLICY_FILE in {a.path for a in client.list_artifacts(again.run_id, "evaluation")}
    assert version_policy(settings, again).model_dump(mode="json") == policies[0]
