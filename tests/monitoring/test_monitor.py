"""The monitor job on a real store and a real decision log: a window like the training data
raises no drift alert; a shifted one raises the data-drift alert, stores it, records the run,
writes the gauges for Prometheus and posts the webhook."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from creditops.cli import app
from creditops.config import Settings, reset_settings
from creditops.data.datasets import load_builtin
from creditops.monitoring.monitor import MonitorConfig, run_monitor
from creditops.registry import load_model
from creditops.store.alerts import AlertStore
from creditops.store.predlog import PredictionLog, PredictionRecord

pytestmark = pytest.mark.slow


@pytest.fixture
def store(trained, tmp_path) -> Settings:
    source, _ = trained
    home = tmp_path / "home"
    shutil.copytree(source.home, home)
    (home / "predictions.db").unlink(missing_ok=True)
    return Settings(home=home)


def _log_decisions(settings: Settings, frame, *, income_factor: float = 1.0) -> int:
    """Decisions of the champion on ``frame``'s rows, as the service would log them."""
    loaded = load_model(settings)
    spec = loaded.spec
    features = frame[spec.features].copy()
    features["Income"] = features["Income"] * income_factor
    probabilities = loaded.model.predict_proba(features)[:, 1]
    now = datetime.now(UTC)
    records = []
    for i, (row, p) in enumerate(
        zip(features.to_dict(orient="records"), probabilities, strict=True)
    ):
        records.append(
            PredictionRecord(
                created_at=now - timedelta(minutes=i % 600),
                model_name=loaded.name,
                model_version=loaded.version,
                features={k: (None if v != v else v) for k, v in row.items()},
                protected={"Age": int(frame["Age"].iloc[i]), "Marital": frame["Marital"].iloc[i]},
                probability=float(p),
                points=500,
                decision="approve" if p < 0.2 else "decline",
                latency_ms=1.0,
            )
        )
    with PredictionLog(settings.resolved_database_url) as log:
        log.write_many(records)
    return len(records)


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_a_window_like_the_training_data_raises_no_drift_alert(store):
    frame, _ = load_builtin("credit_data")
    rows = frame.sample(1500, random_state=1).reset_index(drop=True)
    _log_decisions(store, rows)
    report = run_monitor(store, config=MonitorConfig())
    assert report.rows == 1500
    assert report.drift is not None
    assert report.drift["level"] == "ok"
    assert not [a for a in report.alerts if a["check"] == "data_drift"]
    with AlertStore.from_settings(store) as alerts:
        runs = alerts.runs()
    assert [r.id for r in runs] == [report.run_id]
    assert runs[0].drift_level == "ok"


def test_an_income_shock_raises_the_drift_alert_everywhere(store, tmp_path):
    frame, _ = load_builtin("credit_data")
    rows = frame.sample(1500, random_state=2).reset_index(drop=True)
    _log_decisions(store, rows, income_factor=0.5)
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received.clear()
    textfile = tmp_path / "creditops.prom"
    config = MonitorConfig.model_validate(
        {
            "alerts": {
                "webhook_url": f"http://127.0.0.1:{server.server_port}/hook",
                "textfile_path": str(textfile),
            }
        }
    )
    try:
        report = run_monitor(store, config=config)
    finally:
        server.shutdown()
    income = next(f for f in report.drift["features"] if f["feature"] == "Income")
    assert income["drifted"] is True
    drift_alerts = [a for a in report.alerts if a["check"] == "data_drift"]
    assert any("Income" in a["message"] for a in drift_alerts)
    with AlertStore.from_settings(store) as alerts:
        stored = alerts.recent(run_id=report.run_id)
    assert {str(a.id) for a in stored} == {a["id"] for a in report.alerts}
    posted = [a for body in _Hook.received for a in body["alerts"]]
    assert any("Income" in a["message"] for a in posted)
    exported = textfile.read_text()
    assert 'creditops_feature_drift{feature="Income"} 1.0' in exported
    assert "creditops_monitor_last_run_timestamp_seconds" in exported
    # The scores moved with the incomes: the prediction-drift PSI is measured, not left empty.
    assert np.isfinite(report.drift["prediction"]["psi"])


def test_monitor_command_reports_json(store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    frame, _ = load_builtin("credit_data")
    _log_decisions(store, frame.sample(300, random_state=3).reset_index(drop=True))
    monkeypatch.setenv("CREDITOPS_HOME", str(store.home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reset_settings()
    try:
        result = CliRunner().invoke(app, ["monitor", "--json"])
        bad = CliRunner().invoke(app, ["monitor", "--every", "soon"])
    finally:
        reset_settings()
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"] == 300
    assert report["model_version"] == "1"
    assert bad.exit_code != 0
    assert "use a number and s, m, h or d" in bad.output


def test_scheduled_runs_never_overlap_or_pile_up():
    from creditops.monitoring.monitor import run_every

    now = [0.0]
    starts: list[float] = []
    durations = iter([10.0, 70.0, 5.0, 5.0])  # the second run overruns a 60 s period

    def job() -> None:
        starts.append(now[0])
        now[0] += next(durations)

    def sleep(seconds: float) -> None:
        assert seconds >= 0
        now[0] += seconds

    assert run_every(60, job, max_runs=4, clock=lambda: now[0], sleep=sleep) == 4
    # 0; 60 (a period after the first began); 130 (at once, the second took 70 s); 190.
    assert starts == [0.0, 60.0, 130.0, 190.0]
    with pytest.raises(ValueError, match="positive"):
        run_every(0, job)


def test_a_file_run_keeps_unknown_outcomes_unknown_and_decides_with_the_policy(store, tmp_path):
    from creditops.monitoring.monitor import _current_from_file
    from creditops.registry import version_policy

    frame, spec = load_builtin("credit_data")
    sample = frame.sample(120, random_state=5).reset_index(drop=True)
    sample[spec.target] = sample[spec.target].astype(object)
    sample.loc[:29, spec.target] = None  # outcomes not known yet
    path = tmp_path / "window.csv"
    sample.to_csv(path, index=False)
    loaded = load_model(store)
    policy = version_policy(store, loaded)
    current = _current_from_file(path, loaded, policy)
    assert current["outcome"].isna().sum() == 30
    known = sample[spec.target].notna()
    want = (sample.loc[known, spec.target].astype(str) == str(spec.positive)).astype(int)
    assert current.loc[known, "outcome"].astype(int).tolist() == want.tolist()
    p = current["probability"].to_numpy()
    assert current["decision"].tolist() == policy.decide_many(p).tolist()
    assert {"approve", "decline"} <= set(current["decision"])


def test_scheduled_runs_reuse_the_champions_reference_until_it_changes(store, trained):
    from creditops.monitoring.monitor import _champion_reference
    from creditops.registry import promote, register_model

    loaded, reference = _champion_reference(store)
    assert _champion_reference(store)[1] is reference  # same version: nothing reloaded
    config = MonitorConfig()
    fitted = reference.drift_calculator(config.drift, loaded.spec)
    assert reference.drift_calculator(config.drift, loaded.spec) is fitted
    _, result = trained
    other = next(c for c in result.candidates if not c.champion)
    tags = {"parent_run_id": result.parent_run_id, "candidate": other.name, "seed": 42}
    version = register_model(other.model_uri, store, alias=None, tags=tags)
    promote(store, str(version))
    again, other_reference = _champion_reference(store)
    assert again.version == str(version)
    assert other_reference is not reference


def test_a_run_with_outcomes_records_its_realised_auc(store):
    from helpers import log_labelled_decisions

    frame, spec = load_builtin("credit_data")
    rows = frame.sample(800, random_state=4).reset_index(drop=True)
    outcomes = (rows[spec.target].astype(str) == str(spec.positive)).astype(int).tolist()
    log_labelled_decisions(store, rows, outcomes)
    # Logged at a fixed time, an hour apart: the last 800 as one window.
    config = MonitorConfig.model_validate({"last_n": 800, "performance": {"window": None}})
    report = run_monitor(store, config=config)
    with AlertStore.from_settings(store) as alerts:
        run = alerts.runs()[0]
    assert run.id == report.run_id
    # Every decision was logged with probability 0.2: no ranking, an AUC of exactly 0.5.
    assert run.realised_roc_auc == pytest.approx(0.5)
