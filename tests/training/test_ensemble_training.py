"""The stacked ensemble as a candidate: its evidence on the same folds as the others, its run,
the rule deciding, and, once it is the champion, served over HTTP with its fast path, its
explanations and its reasons, and reviewed in the model card."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.data.split import split_dataset
from creditops.data.validate import validate_dataset
from creditops.models.anatomy import anatomy, model_kind
from creditops.registry import register_trained
from creditops.training import tracking
from creditops.training.ensemble import ENSEMBLE, choose_members, stacked_out_of_fold
from creditops.training.train import TrainingResult, train
from creditops.training.tune import aucs_by_fold, fold_splits
from helpers import serving

pytestmark = pytest.mark.slow

MEMBERS = ["logistic_regression", "lightgbm"]

API_KEY = "ensemble-test-key-0123456789"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, TrainingResult]:
    """LR, LightGBM and their ensemble on credit_data; the rule takes the best CV AUC (no
    margin), which the ensemble has here, so it is registered as champion."""
    settings = Settings(home=tmp_path_factory.mktemp("ensemble-home"), selection_se=0.0)
    frame, spec = load_builtin("credit_data")
    result = train(
        settings,
        frame=frame,
        spec=spec,
        dataset_name="credit_data",
        profile="fast",
        models=[*MEMBERS, ENSEMBLE],
    )
    register_trained(settings, result, alias="champion")
    return settings, result


def test_the_ensemble_is_a_candidate_on_the_same_folds(trained) -> None:
    _, result = trained
    by_name = {c.name: c for c in result.candidates}
    assert list(by_name) == [*MEMBERS, ENSEMBLE]
    ensemble = by_name[ENSEMBLE]
    assert ensemble.params["members"] == choose_members(
        {n: by_name[n].cv_auc_mean for n in MEMBERS}, 3
    )
    assert ensemble.calibration == "stacked"
    assert ensemble.complexity > max(by_name[n].complexity for n in MEMBERS)
    assert len(ensemble.fold_aucs) == len(by_name["lightgbm"].fold_aucs) == 5
    assert ensemble.cv_auc_mean == pytest.approx(np.mean(ensemble.fold_aucs))
    # The evidence reproduced from the members' own out-of-fold predictions.
    frame, spec = load_builtin("credit_data")
    validated = validate_dataset(frame, spec)
    seed = trained[0].seed
    split = split_dataset(validated, seed=seed)
    X, y = validated.X.iloc[split.train], validated.y[split.train]
    splits = fold_splits(X, y, n_folds=5, seed=seed)
    models = result.models
    member_oof = {}
    for name in ensemble.params["members"]:
        oof = np.full(len(y), np.nan)
        for fit_rows, score_rows in splits[0]:
            member = clone(anatomy(models[name]).pipeline).fit(X.iloc[fit_rows], y[fit_rows])
            oof[score_rows] = member.predict_proba(X.iloc[score_rows])[:, 1]
        member_oof[name] = oof[None, :]
        assert aucs_by_fold(y, member_oof[name], splits) == pytest.approx(
            by_name[name].fold_aucs, abs=1e-9
        )
    stacked = stacked_out_of_fold(member_oof, y, splits)
    assert aucs_by_fold(y, stacked, splits) == pytest.approx(ensemble.fold_aucs, abs=1e-9)


def test_the_rule_chose_it_on_the_best_cross_validated_auc(trained) -> None:
    _, result = trained
    assert result.selection_evidence.best_by_cv == ENSEMBLE
    assert result.champion == ENSEMBLE
    # The ensemble won the first round, so it was confirmed on new folds against the best
    # single model.
    assert result.selection_evidence.screening is not None
    best_single = result.selection_evidence.screening.candidates[1].name
    assert {c.name for c in result.selection_evidence.candidates} == {ENSEMBLE, best_single}
    assert len(result.selection_evidence.candidates[0].fold_aucs) == 10
    champion = result.champion_result
    frame, spec = load_builtin("credit_data")
    validated = validate_dataset(frame, spec)
    split = split_dataset(validated, seed=trained[0].seed)
    proba = result.models[ENSEMBLE].predict_proba(validated.X.iloc[split.test])[:, 1]
    assert champion.test["roc_auc"] == pytest.approx(roc_auc_score(validated.y[split.test], proba))


def test_its_run_records_the_stack(trained) -> None:
    _, result = trained
    ensemble = result.champion_result
    stack = json.loads(tracking.download_artifact(ensemble.run_id, "ensemble.json").read_text())
    assert stack["kept"] == result.models[ENSEMBLE].member_names_
    assert stack["weights"] == pytest.approx(result.models[ENSEMBLE].weights_.tolist(), abs=1e-6)
    assert all(w > 0 for w in stack["weights"])


@pytest.fixture(scope="module")
def server(trained) -> Iterator[str]:
    settings, _ = trained
    with serving(settings.model_copy(update={"api_key": API_KEY})) as url:
        yield url


def test_the_ensemble_champion_serves_with_its_fast_path_and_reasons(trained, server) -> None:
    from creditops.serving.fastpath import EnsembleScorer
    from creditops.serving.served import build_served_model

    settings, _ = trained
    served = build_served_model(settings)
    assert model_kind(served.loaded.model) == "ensemble"
    assert isinstance(served.scorer, EnsembleScorer)
    frame, _ = load_builtin("credit_data")
    rows = frame[served.spec.features].head(30)
    records = json.loads(rows.to_json(orient="records"))
    np.testing.assert_allclose(
        served.probabilities(records),
        served.loaded.model.predict_proba(rows)[:, 1],
        rtol=0,
        atol=1e-9,
    )
    with httpx.Client(base_url=server, timeout=60, headers={"X-API-Key": API_KEY}) as client:
        decisions = [client.post("/predict", json=r).json() for r in records]
        declined = [d for d in decisions if d["decision"] == "decline"]
        assert declined, "some of these applicants should be declined"
        assert all(1 <= len(d["reasons"]) <= 4 for d in declined)
        body = client.post("/explain", json=records[0]).json()
    shap = body["shap"]
    assert shap["method"] == "stacked"
    assert shap["model_type"] == "ensemble"
    total = shap["base_value"] + sum(c["contribution"] for c in shap["contributions"])
    assert total == pytest.approx(shap["raw_output"], abs=1e-6)
    assert body["probability_of_default"] == pytest.approx(
        served.loaded.model.predict_proba(rows.head(1))[0, 1], abs=1e-9
    )


def test_the_model_card_shows_the_stack(trained) -> None:
    from creditops.evaluation.report import render_markdown
    from creditops.registry.review import evaluate_version

    settings, result = trained
    evaluation = evaluate_version(settings)
    stack = evaluation.result.ensemble
    assert stack is not None
    assert [m["name"] for m in stack["members"]] == result.models[ENSEMBLE].member_names_
    text = render_markdown(evaluation)
    assert "## Stacked ensemble" in text
    assert "the stacker, a logistic regression fitted on out-of-fold predictions" in text
    assert "| ensemble (champion) |" in text


def test_members_are_the_best_by_cv_among_those_explained_exactly() -> None:
    from creditops.models.zoo import CANDIDATES

    means = {"neural_network": 0.85, "lightgbm": 0.84, "xgboost": 0.83, "scorecard": 0.80}
    exact = [name for name, c in CANDIDATES.items() if c.exact_explanations]
    assert "neural_network" not in exact
    assert choose_members(means, 3, exact) == ["lightgbm", "xgboost", "scorecard"]
    assert choose_members(means, 2) == ["neural_network", "lightgbm"]
    assert choose_members({"b": 0.8, "a": 0.8}, 2) == ["a", "b"]  # ties by name


def test_an_ensemble_the_budget_cannot_confirm_is_not_champion() -> None:
    from creditops.training.candidate import CandidateResult
    from creditops.training.select import CandidateScores, choose_champion
    from creditops.training.train import _without_ensemble

    def result(name: str, complexity: int, folds: list[float]) -> CandidateResult:
        return CandidateResult(
            name=name,
            label=name,
            complexity=complexity,
            params={},
            calibration="none",
            cv_auc_mean=float(np.mean(folds)),
            cv_auc_std=float(np.std(folds)),
            cv={},
            fold_aucs=folds,
            validation={"roc_auc": 0.8},
        )

    results = [
        result("logistic_regression", 1, [0.80, 0.78, 0.79, 0.81, 0.80]),
        result("lightgbm", 5, [0.83, 0.81, 0.82, 0.84, 0.83]),
        result(ENSEMBLE, 7, [0.86, 0.84, 0.85, 0.87, 0.86]),
    ]
    first = choose_champion(
        [CandidateScores(r.name, r.label, r.complexity, r.fold_aucs) for r in results]
    )
    assert first.champion == ENSEMBLE
    settings = Settings(home="/tmp/unused-home")
    chosen = _without_ensemble(first, results, settings)
    assert chosen.champion == "lightgbm"
    assert chosen.screening == first
    assert "no room to confirm it" in chosen.reason
    assert {c.name for c in chosen.candidates} == {"logistic_regression", "lightgbm"}
