"""The whole review of a registered version, the report and the model card, end to end on a
real MLflow store (the session's `trained` fixture)."""

from __future__ import annotations

import json
import re

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from creditops.cli import app
from creditops.evaluation.policy import DecisionPolicy
from creditops.evaluation.report import write_report
from creditops.evaluation.review import EvaluationConfig
from creditops.registry import load_model, load_version_data
from creditops.registry.review import evaluate_version, log_evaluation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluation(trained):
    settings, _ = trained
    return evaluate_version(settings, "champion", config=EvaluationConfig(n_boot=200))


def test_review_measures_the_champion_on_its_own_test_split(trained, evaluation):
    _, training = trained
    result = evaluation.result
    assert result.model_version == training.registered_version
    assert result.candidate == training.champion
    assert result.metrics["n"] == training.split_sizes["test"]
    # The same split and model as training: the test AUC logged then is reproduced now.
    assert result.metrics["roc_auc"] == pytest.approx(
        training.champion_result.test["roc_auc"], abs=1e-12
    )
    low, high = result.metrics["roc_auc_ci"]
    assert low < result.metrics["roc_auc"] < high
    assert {c["name"] for c in result.candidates} == {c.name for c in training.candidates}


def test_policy_is_chosen_on_validation_and_profit_maximizing(evaluation):
    result = evaluation.result
    assert result.business.n == 668  # validation rows, not test
    assert result.policy.approve_below == result.business.optimal.threshold
    assert result.policy.threshold_source == "profit-maximizing"
    assert result.policy.decline_at_or_above >= result.policy.approve_below
    assert 0 < result.policy_outcome.approve_rate < 1


def test_fairness_covers_age_bins_marital_and_their_intersection(evaluation):
    fairness = evaluation.result.fairness
    names = [a.attribute for a in fairness.attributes]
    assert names[:2] == ["Age", "Marital"]
    assert any("×" in name for name in names)
    age = fairness.attribute("Age")
    assert [g.group for g in age.groups] == ["<25", "25–39", "40–59", "60+"]
    assert evaluation.result.fairness_gate is not None
    assert {m.attribute for m in evaluation.result.mitigation} == {"Age", "Marital"}


def test_example_decline_has_reasons_that_never_name_protected_attributes(evaluation):
    example = evaluation.result.example
    assert example is not None
    assert example.decision == "decline"
    eligible = sorted(
        (
            c.contribution
            for c in example.shap.contributions
            if c.contribution > 0 and c.feature not in {"Age", "Marital"}
        ),
        reverse=True,
    )
    assert eligible
    assert [r.contribution for r in example.reasons] == eligible[:4]
    assert not {r.feature for r in example.reasons} & {"Age", "Marital"}
    assert abs(example.shap.additivity_gap) < 1e-5


def test_report_is_self_contained_and_complete(tmp_path, evaluation):
    paths = write_report(evaluation, tmp_path / "report")
    html = paths["html"].read_text(encoding="utf-8")
    # Works offline: every image is inlined and nothing is fetched from elsewhere.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert html.count('src="data:image/png;base64,') >= 10
    for title in (
        "Intended use",
        "Data and split",
        "Candidates compared",
        "Selection rationale",
        "Metrics",
        "Calibration",
        "Fairness",
        "Error analysis",
        "Business impact and decision policy",
        "Explanations",
        "Limitations",
    ):
        assert f"<h2>{title}</h2>" in html
        assert f"## {title}" in paths["model_card"].read_text(encoding="utf-8")
    card = paths["model_card"].read_text(encoding="utf-8")
    # Training included the WoE scorecard: every candidate is measured against it.
    assert "test AUC gain over scorecard" in html
    assert "test Gini gain over scorecard" in card
    assert ("## Scorecard points" in card) == (evaluation.result.candidate == "scorecard")
    # The rationale is written from measured figures.
    auc = evaluation.result.metrics["roc_auc"]
    assert f"ROC AUC {auc:.3f}" in card
    assert "**Hypothesis.**" in card
    assert "**Ethics and fair lending.**" in card
    for figure in re.findall(r"\]\((plots/[^)]+)\)", card):
        assert (paths["model_card"].parent / figure).exists()


def test_evaluation_and_policy_are_logged_to_the_versions_run(trained, evaluation):
    settings, _ = trained
    log_evaluation(evaluation)
    loaded = load_model(settings)
    client = MlflowClient(settings.resolved_tracking_uri)
    paths = {a.path for a in client.list_artifacts(loaded.run_id, "evaluation")}
    assert {"evaluation/evaluation.json", "evaluation/policy.json"} <= paths
    local = client.download_artifacts(loaded.run_id, "evaluation/policy.json")
    with open(local, encoding="utf-8") as handle:
        policy = DecisionPolicy.model_validate_json(handle.read())
    assert policy == evaluation.result.policy
    run = client.get_run(loaded.run_id)
    assert run.data.tags["fairness_gate"] in {"pass", "fail"}
    data = load_version_data(settings, loaded)
    assert len(data.frame) == 4454


def test_cli_evaluate_json_and_report(trained, tmp_path, monkeypatch):
    settings, _ = trained
    monkeypatch.setenv("CREDITOPS_HOME", str(settings.home))
    from creditops.config import reset_settings

    reset_settings()
    try:
        runner = CliRunner()
        result = runner.invoke(app, ["evaluate", "--json", "--no-mitigation", "--n-boot", "100"])
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        assert payload["schema_version"] == 2
        roc = payload["metrics"]["roc_curve"]  # what the dashboard draws (schema 2)
        assert roc["fpr"][0] == 0.0
        assert roc["tpr"][-1] == 1.0
        assert len(roc["fpr"]) <= 200
        histogram = payload["metrics"]["score_histogram"]
        assert sum(histogram["goods"]) + sum(histogram["bads"]) == payload["metrics"]["n"]
        assert payload["mitigation"] == []
        out = tmp_path / "cli-report"
        result = runner.invoke(app, ["report", "--output", str(out), "--no-mitigation", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["html"] == str(out / "report.html")
        missing = runner.invoke(app, ["evaluate", "--model-version", "99"])
        assert missing.exit_code == 1
        assert "no version '99'" in missing.output
    finally:
        reset_settings()
