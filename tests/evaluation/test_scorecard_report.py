"""The report of a scorecard version shows its points table and explains with points lost; any
report whose training included the scorecard shows every candidate's gain over it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from creditops.data.split import VersionData
from creditops.evaluation.business import derive_policy
from creditops.evaluation.points import applicant_points
from creditops.evaluation.policy import to_points
from creditops.evaluation.report import build_sections, render_markdown, scorecard_gains
from creditops.evaluation.review import EvaluationConfig, evaluate_loaded

CANDIDATES = [  # as tracking.candidate_summaries gives them, best validation AUC first
    {"name": "xgboost", "validation": {"roc_auc": 0.85}, "test": {"roc_auc": 0.861}},
    {"name": "scorecard", "validation": {"roc_auc": 0.84}, "test": {"roc_auc": 0.847}},
    {"name": "logistic_regression", "validation": {"roc_auc": 0.83}, "test": {"roc_auc": 0.839}},
]


@pytest.fixture(scope="module")
def evaluation(credit_case):
    model = credit_case.models["scorecard"]
    spec = credit_case.spec
    data = VersionData(frame=credit_case.frame, split=credit_case.split)
    validation, y_val = data.part("validation", spec)
    policy = derive_policy(
        y_val,
        model.predict_proba(validation[spec.features])[:, 1],
        validation,
        spec,
        credit_case.frame,
    )
    loaded = SimpleNamespace(
        name="credit-default",
        version="7",
        model=model,
        spec=spec,
        tags={"candidate": "scorecard"},
        run_id=None,
    )
    return evaluate_loaded(
        loaded,
        data,
        policy=policy,
        config=EvaluationConfig(n_boot=50),
        candidates=CANDIDATES,
        selection="the scorecard, for the test",
    )


def test_scorecard_version_reports_its_points_table(credit_case, evaluation):
    result = evaluation.result
    table = result.scorecard
    assert table is not None
    assert table.scale == result.policy.scale
    assert table.reproduces_score
    # The table in the result is the one that reproduces the served score.
    X = credit_case.X_test.iloc[:40]
    model = credit_case.models["scorecard"]
    np.testing.assert_allclose(
        applicant_points(model, X, table.scale).sum(axis=1),
        to_points(model.predict_proba(X)[:, 1], table.scale),
        atol=1e-6,
    )
    sections = {s.title: s for s in build_sections(result)}
    points = sections["Scorecard points"]
    rows = points.tables[0].rows
    assert len(rows) == len(table.rows)
    assert rows[0][0] == table.rows[0].feature
    assert rows[0][-1] == f"{table.rows[0].points:.1f}"
    assert "spread evenly" in points.paragraphs[0]
    card = render_markdown(evaluation)
    assert "## Scorecard points" in card
    assert f"| {table.rows[0].feature} | {table.rows[0].bin} |" in card


def test_scorecard_version_explains_with_points_lost(evaluation):
    result = evaluation.result
    assert result.explanation.method == "points"
    assert result.example is not None
    assert result.example.reasons
    assert all(c.contribution >= -1e-12 for c in result.example.shap.contributions)
    sections = {s.title: s for s in build_sections(result)}
    assert sections["Explanations"].paragraphs[0].startswith("Points lost")
    assert "mean |points lost|" in sections["Explanations"].tables[0].columns
    assert "points lost" in dict(sections["Selection rationale"].labelled)["Interpretability"]


def test_candidates_show_their_gain_over_the_scorecard(evaluation):
    gains = scorecard_gains(CANDIDATES)
    assert gains["xgboost"] == pytest.approx((0.014, 0.028))
    assert gains["logistic_regression"] == pytest.approx((-0.008, -0.016))
    assert gains["scorecard"] == (0.0, 0.0)

    # A report whose champion is another candidate shows the gains, and no points table.
    other = evaluation.result.model_copy(update={"candidate": "xgboost", "scorecard": None})
    sections = {s.title: s for s in build_sections(other)}
    assert "Scorecard points" not in sections
    table = sections["Candidates compared"].tables[0]
    assert table.columns[-2:] == ["test AUC gain over scorecard", "test Gini gain over scorecard"]
    by_model = {row[0]: row[-2:] for row in table.rows}
    assert by_model["xgboost (champion)"] == ["+0.014", "+0.028"]
    assert by_model["scorecard"] == ["benchmark", "benchmark"]
    assert by_model["logistic_regression"] == ["-0.008", "-0.016"]
    assert "+0.014 AUC, +0.028 Gini" in sections["Candidates compared"].paragraphs[0]

    # Without a scorecard among the candidates, the table is as it was.
    plain = other.model_copy(update={"candidates": [CANDIDATES[0], CANDIDATES[2]]})
    section = {s.title: s for s in build_sections(plain)}["Candidates compared"]
    assert len(section.tables[0].columns) == 9
    assert not section.paragraphs
