"""The loop a risk team runs, end to end on a real `creditops serve` process: traffic shifts
(an income shock), `creditops monitor` raises the drift alert, `creditops retrain` registers a
challenger and the gates decide, the audit table says why, and a promotion reaches the
running service, then a rollback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from creditops.cli import app
from creditops.config import Settings, reset_settings
from creditops.registry import get_version
from creditops.simulation import simulate
from creditops.store.alerts import AlertStore
from creditops.store.audit import AuditLog
from helpers import free_port

pytestmark = pytest.mark.slow
runner = CliRunner()

API_KEY = "end-to-end-test-key-0123456789"


def _wait(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, "server exited during start-up"
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("server did not become ready")


@pytest.fixture
def service(trained, tmp_path, monkeypatch: pytest.MonkeyPatch):
    source, _ = trained
    home = tmp_path / "home"
    shutil.copytree(source.home, home)
    (home / "predictions.db").unlink(missing_ok=True)
    config = tmp_path / "monitoring.yaml"
    # Small, quick retrains; features_drifted fires at 10% so one shifted feature is enough.
    config.write_text(
        "retrain:\n  models: [logistic_regression]\n  profile: fast\n  drifted_share: 0.1\n",
        encoding="utf-8",
    )
    env = {
        "CREDITOPS_HOME": str(home),
        "CREDITOPS_MONITORING_CONFIG": str(config),
        "CREDITOPS_CHAMPION_POLL_SECONDS": "0.5",
        "CREDITOPS_API_KEY": API_KEY,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reset_settings()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "creditops.cli", "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, process)
        yield url, Settings(home=home, monitoring_config=config)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        reset_settings()


def _cli_json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_shift_alert_retrain_gate_audit_promote_rollback(service, tmp_path: Path):
    url, settings = service
    # Ordinary traffic, then an income shock; outcomes come back for all of it.
    calm = simulate(url, "none", 400, seed=1, key=API_KEY)
    shocked = simulate(url, "income_shock", 1200, seed=2, key=API_KEY)
    assert calm.ok
    assert shocked.ok
    assert shocked.feedback_sent == 1200

    report = _cli_json("monitor")
    assert report["rows"] == 1600
    income = next(f for f in report["drift"]["features"] if f["feature"] == "Income")
    assert income["drifted"] is True
    alerts = [a for a in report["alerts"] if a["check"] == "data_drift"]
    assert any("Income" in a["message"] for a in alerts)
    with AlertStore.from_settings(settings) as store:
        assert any("Income" in a.message for a in store.recent(run_id=report["run_id"]))

    result = _cli_json("retrain")
    assert [r for r in result["reasons"] if "of the features drifted" in r]
    assert result["outcome"] in ("awaiting_approval", "rejected")
    assert result["holdout_rows"] == 480  # the newest 30% of the 1,600 labelled decisions
    assert {g["name"] for g in result["gates"]} == {
        "minimum_labelled_rows",
        "auc_not_worse",
        "calibration_not_worse",
        "fairness",
    }
    challenger = result["challenger_version"]
    assert str(get_version(settings, "challenger").version) == challenger
    assert str(get_version(settings, "champion").version) == "1"  # nothing promoted by itself

    with AuditLog.from_settings(settings) as audit:
        entry = audit.recent(1, action="retrain")[0]
    assert entry.outcome == result["outcome"]
    assert entry.challenger_version == challenger
    assert any("features drifted" in reason for reason in entry.reasons)
    assert [g.name for g in entry.gates] == [g["name"] for g in result["gates"]]
    assert entry.message == result["message"]

    # Promotion follows the gates' verdict; --force overrides a rejection and says so.
    promoted = runner.invoke(app, ["promote"])
    if result["outcome"] == "rejected":
        assert promoted.exit_code == 1
        assert "not cleared for promotion" in promoted.output
        promoted = runner.invoke(app, ["promote", "--force"])
    assert promoted.exit_code == 0, promoted.output
    assert str(get_version(settings, "champion").version) == challenger
    deadline = time.time() + 30
    while (
        httpx.get(f"{url}/model", timeout=10, headers={"X-API-Key": API_KEY}).json()[
            "model_version"
        ]
        != challenger
    ):
        assert time.time() < deadline, "the running service did not follow the promotion"
        time.sleep(0.3)
    after = simulate(url, "none", 50, seed=3, feedback=False, key=API_KEY)
    assert after.model_versions == {challenger: 50}

    rolled = runner.invoke(app, ["rollback"])
    assert rolled.exit_code == 0, rolled.output
    assert str(get_version(settings, "champion").version) == "1"
    with AuditLog.from_settings(settings) as audit:
        actions = [(e.action, e.outcome) for e in audit.recent(3)]
    assert actions[:2] == [("rollback", "rolled_back"), ("promote", "promoted")]
