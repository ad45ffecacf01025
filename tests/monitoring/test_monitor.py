"""The monitor job on a real store and a real decision log: a window like the training data
raises no drift alert; a shifted one raises the data-drift alert, stores it, records the run,
writes the gauges for Prometheus and posts the webhook. A check registered anywhere is run
like the built-in ones, and one that cannot judge the window is skipped, with its reason."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from creditops.cli import app
from creditops.config import Settings, reset_settings
from creditops.data.datasets import load_builtin
from creditops.exceptions import InsufficientDataError
from creditops.monitoring.base import (
    Calculator,
    Flag,
    Level,
    Reference,
    Result,
    get_calculator,
    register_calculator,
)
from creditops.monitoring.gauges import MonitorGauges
from creditops.monitoring.monitor import MonitorConfig, monitor_config, run_monitor
from creditops.registry import load_model
from creditops.store.alerts import AlertStore
from creditops.store.predlog import PredictionLog, PredictionRecord

pytestmark = pytest.mark.slow


@pytest.fixture
def store(trained_store: Settings) -> Settings:
    return trained_store


def _log_decisions(
    settings: Settings, frame, *, income_factor: float = 1.0, beyond: int = 0
) -> int:
    """Decisions of the champion on ``frame``'s rows, as the service would log them;
    ``beyond``: that many rows (every tenth) with Amount past the top of its training range."""
    loaded = load_model(settings)
    spec = loaded.spec
    features = frame[spec.features].copy()
    features["Income"] = features["Income"] * income_factor
    if beyond:
        top = next(s.maximum for s in spec.schema_ if s.name == "Amount")
        features.loc[features.index[: beyond * 10 : 10], "Amount"] = top * 2
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


def test_decisions_past_the_training_range_raise_the_out_of_range_alert(store, tmp_path):
    frame, _ = load_builtin("credit_data")
    rows = frame.sample(1000, random_state=3).reset_index(drop=True)
    _log_decisions(store, rows, beyond=80)  # 8% of the window: past the 5% critical share
    textfile = tmp_path / "creditops.prom"
    config = MonitorConfig.model_validate(
        {"alerts": {"textfile_path": str(textfile)}, "out_of_range": {"critical": 0.05}}
    )
    report = run_monitor(store, config=config)
    (alert,) = [a for a in report.alerts if a["check"] == "out_of_range"]
    assert alert["level"] == "critical"
    assert alert["metric"] == "share_outside:Amount"
    assert alert["value"] == pytest.approx(0.08)
    assert "8.0% of decisions had Amount outside the model's experience" in alert["message"]
    with AlertStore.from_settings(store) as alerts:
        assert any(a.check == "out_of_range" for a in alerts.recent(run_id=report.run_id))
    assert 'creditops_out_of_range_share{feature="Amount"} 0.08' in textfile.read_text()
    assert 'creditops_alert_level{check="out_of_range"} 2.0' in textfile.read_text()


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

    _, reference = _champion_reference(store)
    assert _champion_reference(store)[1] is reference  # same version: nothing reloaded
    drift, config = get_calculator("data_drift"), MonitorConfig().section("drift")
    fitted = reference.calculator(drift, config)
    assert reference.calculator(drift, config) is fitted
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


# --------------------------------------------------------------------------- checks from anywhere


class VolumeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_decisions: int = 50


class Volume(Result):
    decisions: int
    reference_rows: int
    flags: list[Flag]


class VolumeCalculator(Calculator[Volume]):
    """A check defined only here: too few decisions in the window is a warning."""

    config_section = "volume"
    config_model = VolumeConfig

    def __init__(self, config: VolumeConfig | None = None) -> None:
        self.config = config or VolumeConfig()

    @classmethod
    def for_monitor(cls, reference: Reference, config: BaseModel | None = None) -> VolumeCalculator:
        return cls(config if isinstance(config, VolumeConfig) else None).fit(reference)

    def _fit(self, reference: Reference) -> None:
        self.reference_rows_ = len(reference.labels)

    def _calculate(self, frame: pd.DataFrame) -> Volume:
        flags = []
        if len(frame) < self.config.min_decisions:
            flags.append(
                Flag(
                    check="volume",
                    kind="few_decisions",
                    level=Level.WARNING,
                    metric="decisions",
                    value=len(frame),
                    threshold=self.config.min_decisions,
                    message=f"only {len(frame)} decisions in the window",
                )
            )
        return Volume(decisions=len(frame), reference_rows=self.reference_rows_, flags=flags)

    def run_figures(self, result: Volume) -> dict[str, int]:
        return {"volume_decisions": result.decisions}


class OutcomesCalculator(Calculator[Volume]):
    """A check defined only here that needs outcomes, and has none to judge."""

    def _fit(self, reference: Reference) -> None:
        pass

    def _calculate(self, frame: pd.DataFrame) -> Volume:
        if frame["outcome"].notna().sum() == 0:
            raise InsufficientDataError("no outcome is known yet")
        raise AssertionError("every outcome in these tests is unknown")


def test_a_check_registered_anywhere_runs_and_its_flags_become_alerts(
    store, scoped_registry, tmp_path
):
    register_calculator("volume")(VolumeCalculator)
    frame, _ = load_builtin("credit_data")
    _log_decisions(store, frame.sample(300, random_state=6).reset_index(drop=True))
    # Its config section is part of the monitoring YAML from the moment it is registered.
    path = tmp_path / "monitoring.yaml"
    path.write_text("volume: {min_decisions: 1000}\nmonitor: {window_hours: 24}\n")
    config = monitor_config(Settings(home=store.home, monitoring_config=path))
    gauges = MonitorGauges()

    report = run_monitor(store, config=config, gauges=gauges)

    check = report.checks["volume"]
    assert (check.status, check.level) == ("ran", "warning")
    assert check.result["reference_rows"] > 0  # fitted on the champion's reference
    (alert,) = [a for a in report.alerts if a["check"] == "volume"]
    assert (alert["level"], alert["value"], alert["threshold"]) == ("warning", 300, 1000)
    assert alert["message"] == "only 300 decisions in the window"
    with AlertStore.from_settings(store) as alerts:
        (stored,) = alerts.recent(run_id=report.run_id, check="volume")
        (run,) = alerts.runs()
    assert str(stored.id) == alert["id"]
    assert run.summary["volume_decisions"] == 300
    assert run.drift_level is not None  # the built-in checks ran beside it
    assert gauges.registry.get_sample_value("creditops_alert_level", {"check": "volume"}) == 1
    assert {"data_drift", "performance", "estimated_performance", "fairness"} <= set(report.checks)


def test_a_check_that_cannot_judge_the_window_is_skipped_with_its_reason(store, scoped_registry):
    register_calculator("needs_outcomes")(OutcomesCalculator)
    frame, _ = load_builtin("credit_data")
    _log_decisions(store, frame.sample(300, random_state=7).reset_index(drop=True))
    # 300 decisions: too few for drift at min_rows 1000, enough for the others.
    report = run_monitor(store, config=MonitorConfig(min_rows=1000))

    skipped = {name: c.reason for name, c in report.checks.items() if c.status == "skipped"}
    assert skipped == {
        "needs_outcomes": "no outcome is known yet",
        "data_drift": "300 decision(s) (decisions of the last 168 hours); drift is judged on at "
        "least 1000",
    }
    assert "needs_outcomes skipped: no outcome is known yet" in report.notes
    assert report.drift is None
    assert report.checks["performance"].status == "ran"
    assert report.performance == report.checks["performance"].result
    assert not [a for a in report.alerts if a["check"] in ("needs_outcomes", "data_drift")]
    with AlertStore.from_settings(store) as alerts:
        (run,) = alerts.runs()
    assert run.id == report.run_id
    assert (run.drift_level, run.drift_share, run.prediction_psi) == (None, None, None)
