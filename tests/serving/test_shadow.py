"""The challenger in shadow on simulated live traffic: a real server scores every decision with
the champion (the answer) and the challenger (stored apart, after the answer), the answers are
exactly the champion's, the monitor compares the two, and the promotion gates hold a
challenger back until its shadow decisions are enough and close enough."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from creditops.config import Settings, reset_settings
from creditops.data.datasets import load_builtin
from creditops.exceptions import NotClearedError
from creditops.monitoring.monitor import MonitorConfig, run_monitor
from creditops.monitoring.shadow import ShadowGates, compare_shadow, gate_failures
from creditops.retraining.pipeline import promote_challenger
from creditops.serving.served import build_served_model
from creditops.serving.service import DecisionService
from creditops.store.audit import AuditLog
from creditops.store.predlog import PredictionLog
from creditops.store.shadow import count_shadow, shadow_pairs
from helpers import cleared_by_a_retrain, copy_with_challenger, serving

pytestmark = pytest.mark.slow

API_KEY = "shadow-test-key-0123456789"
HEADERS = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def store(trained, tmp_path_factory) -> tuple[Path, str]:
    """The trained champion (version 1) and another candidate registered as the challenger."""
    home = tmp_path_factory.mktemp("shadow") / "home"
    return home, copy_with_challenger(trained, home, declining=False)


def _applications(n: int) -> list[dict]:
    frame, spec = load_builtin("credit_data")
    rows = frame.drop(columns=[spec.target, spec.id]).sample(n, random_state=7)
    return [
        {k: v for k, v in record.items() if v is not None}
        for record in json.loads(rows.to_json(orient="records"))
    ]


def _shadow_counts(client: httpx.Client) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == "creditops_shadow_decisions":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[sample.labels["result"]] = sample.value
    return found


def test_the_challenger_scores_live_traffic_in_shadow_without_changing_an_answer(store):
    home, challenger_version = store
    settings = Settings(home=home, api_key=API_KEY, shadow_share=1.0, champion_poll_seconds=0)
    applications = _applications(120)
    with serving(settings) as url, httpx.Client(base_url=url, headers=HEADERS, timeout=60) as c:
        singles = [c.post("/predict", json=a).json() for a in applications[:100]]
        batch = c.post("/predict/batch", json={"applications": applications[100:]}).json()
        deadline = time.time() + 30
        while _shadow_counts(c).get("written", 0) < 120 and time.time() < deadline:
            time.sleep(0.2)
        counted = _shadow_counts(c)
    decisions = [*singles, *batch["decisions"]]
    assert counted.get("written") == 120, counted
    assert counted.get("dropped", 0) == 0
    # The answers are the champion's own, as without a shadow.
    champion = build_served_model(Settings(home=home))
    challenger = build_served_model(Settings(home=home), challenger_version)
    for application, decision in zip(applications, decisions, strict=True):
        features, _ = champion.screen({f: application.get(f) for f in champion.spec.features})
        assert decision["model_version"] == "1"
        assert decision["probability_of_default"] == pytest.approx(
            champion.probability(features), abs=1e-12
        )
    with PredictionLog.from_settings(settings) as log:
        assert count_shadow(log, challenger_version) == 120
        pairs = shadow_pairs(log, challenger_version)
    assert sorted(pairs["prediction_id"]) == sorted(d["prediction_id"] for d in decisions)
    by_id = {d["prediction_id"]: a for d, a in zip(decisions, applications, strict=True)}
    for row in pairs.itertuples():
        features, _ = challenger.screen(
            {f: by_id[row.prediction_id].get(f) for f in challenger.spec.features}
        )
        assert row.challenger_probability == pytest.approx(
            challenger.probability(features), abs=1e-12
        )
        assert row.champion_version == "1"

    # The comparison on that traffic, as the monitor makes it.
    comparison = compare_shadow(pairs, challenger_version)
    assert comparison.rows == 120
    assert sum(n for row in comparison.decisions.values() for n in row.values()) == 120
    same = sum(comparison.decisions.get(d, {}).get(d, 0) for d in ("approve", "refer", "decline"))
    assert comparison.agreement == pytest.approx(same / 120)
    assert comparison.psi is not None
    assert comparison.psi >= 0
    assert set(comparison.champion.disparate_impact) == {"Age", "Marital"}
    assert set(comparison.challenger.verdicts) == {"Age", "Marital"}
    assert 0 <= comparison.challenger.approval_rate <= 1
    print(
        f"\nshadow on 120 live applications: agreement {comparison.agreement:.1%}, score PSI "
        f"{comparison.psi:.3f}, approval {comparison.champion.approval_rate:.1%} (champion) vs "
        f"{comparison.challenger.approval_rate:.1%} (challenger), disparate impact "
        f"{comparison.champion.disparate_impact} vs {comparison.challenger.disparate_impact}"
    )
    report = run_monitor(Settings(home=home), config=MonitorConfig(min_rows=10))
    assert report.shadow is not None
    assert report.shadow["rows"] == 120
    assert report.shadow["agreement"] == comparison.agreement

    # Gates: too few shadow decisions, or too much divergence, hold the promotion back.
    assert gate_failures(comparison, ShadowGates(min_decisions=100)) == []
    (few,) = gate_failures(comparison, ShadowGates(min_decisions=500))
    assert "120 shadow decision(s)" in few
    assert gate_failures(comparison, ShadowGates(max_psi=comparison.psi + 0.01)) == []
    assert gate_failures(comparison, ShadowGates(min_agreement=1.0)) != [] or (
        comparison.agreement == 1.0
    )


def _decided_in_shadow(source: Path, target: Path, n: int) -> None:
    """``n`` decisions with their shadow decisions, made by the service in this process."""
    shutil.copytree(source, target)
    settings = Settings(home=target, shadow_share=1.0)
    with PredictionLog.from_settings(settings) as log:
        service = DecisionService(settings, log)
        served = service.load()
        assert service.follow_challenger() is not None
        for application in _applications(n):
            service.decide(served.application_model.model_validate(application), served)
        service.close()


def test_a_promotion_waits_for_enough_shadow_decisions(store, tmp_path, monkeypatch):
    source, challenger_version = store
    home = tmp_path / "home"
    _decided_in_shadow(source, home, 60)
    config = tmp_path / "monitoring.yaml"
    config.write_text("retrain: {shadow: {min_decisions: 100000, max_psi: 5.0}}\n")
    monkeypatch.setenv("CREDITOPS_HOME", str(home))
    monkeypatch.setenv("CREDITOPS_MONITORING_CONFIG", str(config))
    reset_settings()
    settings = Settings(home=home, monitoring_config=config)
    # A retrain cleared this version: its shadow decisions are now what holds it back.
    cleared_by_a_retrain(settings, challenger_version)
    try:
        with pytest.raises(NotClearedError, match="shadow decision"):
            promote_challenger(settings, version=challenger_version, move=lambda v, r: ("1", v))
        with AuditLog.from_settings(settings) as audit:
            (refusal,) = audit.recent(1, action="promote")
        assert refusal.outcome != "promoted"
        assert "shadow" in refusal.message
        config.write_text("retrain: {shadow: {min_decisions: 50, max_psi: 5.0}}\n")
        entry = promote_challenger(settings, version=challenger_version, move=lambda v, r: ("1", v))
        assert entry.outcome == "promoted"
        shadow_gate = next(g for g in entry.gates if g.name == "shadow")
        assert shadow_gate.passed
        assert shadow_gate.value >= 50
    finally:
        reset_settings()
