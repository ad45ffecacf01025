"""Tuning under a time budget: the search stops at its deadline but never before one evaluated
setting, the first Optuna trial is the candidate's known-good setting, and large training
splits are tuned on a stratified sample."""

from __future__ import annotations

import time

import numpy as np
import pytest

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.data.split import split_dataset
from creditops.data.validate import validate_dataset
from creditops.models.anatomy import anatomy
from creditops.models.zoo import CANDIDATES, FeatureSet
from creditops.serving.fastpath import FastScorer
from creditops.training.budget import tuning_rows as _tuning_rows
from creditops.training.tune import tune


@pytest.fixture(scope="module")
def credit():
    frame, spec = load_builtin("credit_data")
    validated = validate_dataset(frame, spec)
    rows = np.arange(1500)
    return validated.X.iloc[rows], validated.y[rows], FeatureSet.from_spec(validated.spec)


def _tune(name, credit, deadline):
    X, y, features = credit
    return tune(
        CANDIDATES[name],
        features,
        X,
        y,
        profile="full",
        n_folds=3,
        seed=0,
        n_jobs=1,
        deadline=deadline,
    )


@pytest.mark.parametrize("name", ["logistic_regression", "lightgbm"])
def test_a_spent_budget_still_evaluates_one_setting(name, credit):
    result = _tune(name, credit, deadline=time.monotonic() - 1.0)
    assert result.n_trials == 1
    assert len(result.fold_aucs) == 3
    assert result.cv_mean["roc_auc"] > 0.7


def test_the_first_optuna_trial_is_the_candidates_known_good_setting(credit):
    result = _tune("lightgbm", credit, deadline=time.monotonic() - 1.0)
    first = CANDIDATES["lightgbm"].first_trial
    assert {k: result.params[k] for k in first} == pytest.approx(first)


def test_without_a_deadline_the_whole_grid_is_searched(credit):
    result = _tune("logistic_regression", credit, deadline=None)
    assert result.n_trials == len(CANDIDATES["logistic_regression"].grid["full"]["C"])


def test_large_training_splits_are_tuned_on_a_stratified_sample():
    rng = np.random.default_rng(0)
    y = (rng.random(50_000) < 0.2).astype(int)
    train = np.arange(2_000, 50_000)
    settings = Settings(tuning_rows=10_000)
    rows = _tuning_rows(y, train, settings)
    assert len(rows) == 10_000
    assert set(rows) <= set(train)
    assert np.all(np.diff(rows) > 0)
    assert y[rows].mean() == pytest.approx(y[train].mean(), abs=0.001)
    assert _tuning_rows(y, train[:5_000], settings) is not None
    assert len(_tuning_rows(y, train[:5_000], settings)) == 5_000


def test_the_default_budget_applies_only_past_budget_rows_or_the_tuning_sample():
    settings = Settings(tuning_rows=30_000, budget_rows=10_000, large_data_time_budget=300.0)
    assert settings.resolved_time_budget(10_000) is None
    assert settings.resolved_time_budget(10_001) == 300.0
    sampled = Settings(tuning_rows=5_000, budget_rows=10_000, large_data_time_budget=300.0)
    assert sampled.resolved_time_budget(5_001) == 300.0
    assert Settings(time_budget=60.0).resolved_time_budget(1_000) == 60.0


def test_a_large_training_split_is_tuned_on_a_sample_within_a_budget(settings):
    from mlflow import MlflowClient

    from creditops.training.train import train

    frame, spec = load_builtin("credit_data")
    small = settings.model_copy(update={"tuning_rows": 1_000, "large_data_time_budget": 60.0})
    result = train(
        small,
        frame=frame,
        spec=spec,
        dataset_name="credit_data",
        profile="fast",
        models=["logistic_regression", "lightgbm"],
    )
    params = MlflowClient(small.resolved_tracking_uri).get_run(result.parent_run_id).data.params
    assert params["tuning_rows"] == "1000"
    assert params["time_budget_s"] == "60.0"
    for candidate in result.candidates:
        assert len(candidate.fold_aucs) == 5
        assert candidate.test["roc_auc"] > 0.75
    # the final models were fitted on every training row, not on the sample: the imputer's
    # medians are those of the whole training split
    model = result.models["logistic_regression"]
    pipeline = anatomy(model).pipeline
    validated = validate_dataset(frame, spec)
    split = split_dataset(validated, seed=small.seed)
    numeric = validated.spec.numeric
    medians = validated.X.iloc[split.train][numeric].astype(float).median().to_numpy()
    imputer = pipeline[0].named_transformers_["numeric"]["impute"]
    assert imputer.statistics_ == pytest.approx(medians)
    # calibrated (or not) on validation around the frozen model, and still served fast
    for name, model in result.models.items():
        scorer = FastScorer.compile(model, validated.spec)
        rows = validated.X.iloc[split.test[:50]]
        assert scorer.score_many(rows.to_dict("records")) == pytest.approx(
            model.predict_proba(rows)[:, 1], abs=1e-9
        ), name
