"""Training end to end against a real MLflow SQLite store in a temporary CREDITOPS_HOME."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from creditops.data.datasets import load_builtin
from creditops.data.split import Split
from creditops.data.validate import validate_dataset
from creditops.models.zoo import CANDIDATES
from creditops.registry import CHAMPION, champion_exists, load_model, train_and_register
from creditops.training.tracking import configure_tracking
from creditops.training.train import load_training_data

pytestmark = pytest.mark.slow


def test_every_candidate_is_tracked_as_a_child_run(trained):
    settings, result = trained
    client = MlflowClient(settings.resolved_tracking_uri)
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    # the zoo, and the stacked ensemble of the best of them
    assert {run.data.tags["candidate"] for run in children} == {*CANDIDATES, "ensemble"}
    for run in children:
        metrics = run.data.metrics
        for metric in (
            "roc_auc",
            "gini",
            "ks",
            "accuracy",
            "precision",
            "recall",
            "f1",
            "brier",
            "log_loss",
        ):
            assert f"validation_{metric}" in metrics
            assert f"test_{metric}" in metrics
        assert 0.0 < metrics["cv_roc_auc_std"] < 0.1
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        if run.data.tags["candidate"] == "ensemble":  # calibrated by its stacker, not tuned
            assert run.data.params["calibration"] == "stacked"
            assert "ensemble.json" in artifacts
        else:
            assert run.data.params["calibration"] in {"none", "sigmoid", "isotonic"}
            assert "tuning_history.csv" in artifacts
        if run.data.tags["candidate"] == "scorecard":  # its points table, readable as CSV
            assert run.data.params["imbalance_handling"].startswith("none")
            table = pd.read_csv(
                client.download_artifacts(run.info.run_id, "scorecard/points_table.csv")
            )
            assert list(table.columns) == [
                "feature",
                "bin",
                "count",
                "event_rate",
                "woe",
                "iv",
                "points",
            ]
            assert table["points"].notna().all()
        plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots/test")}
        assert plots == {
            f"plots/test/{name}"
            for name in ("roc.png", "pr.png", "calibration.png", "confusion_matrix.png")
        }


def test_parent_run_records_data_split_and_provenance(trained):
    settings, result = trained
    client = MlflowClient(settings.resolved_tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert len(parent.data.tags["data_fingerprint"]) == 64
    assert parent.data.tags["creditops_version"]
    assert parent.data.tags["git_commit"]
    assert parent.data.tags["champion"] == result.champion
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"spec.json", "split.csv", "validation.json", "candidates.csv"} <= artifacts

    local = mlflow.artifacts.download_artifacts(
        run_id=result.parent_run_id,
        artifact_path="split.csv",
        tracking_uri=settings.resolved_tracking_uri,
    )
    table = pd.read_csv(local)
    assert table["part"].value_counts().to_dict() == result.split_sizes
    assert table["id"].is_unique


def test_champion_is_registered_and_reloads_with_identical_probabilities(trained):
    settings, result = trained
    assert champion_exists(settings)
    loaded = load_model(settings, CHAMPION)
    assert loaded.version == result.registered_version
    assert loaded.tags["candidate"] == result.champion
    assert loaded.spec.features == result.models[result.champion].feature_names_in_.tolist()

    frame, spec = load_builtin("credit_data")
    validated = validate_dataset(frame, spec)
    X = validated.X.head(300)
    expected = result.models[result.champion].predict_proba(X)
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    configure_tracking(settings)  # MLflow's own loader reads its process-wide store
    try:
        pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.registered_model_name}@champion")
        np.testing.assert_array_equal(np.asarray(pyfunc.predict(X)), expected)
    finally:
        del os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"]
    np.testing.assert_array_equal(loaded.model.predict_proba(X), expected)


def test_logged_test_metrics_are_reproducible_from_the_saved_split(trained):
    settings, result = trained
    table = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=result.parent_run_id,
            artifact_path="split.csv",
            tracking_uri=settings.resolved_tracking_uri,
        )
    )
    split = Split.from_frame(table, seed=settings.seed)
    frame, spec = load_builtin("credit_data")
    validated = validate_dataset(frame, spec)
    loaded = load_model(settings)
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(
        validated.y[split.test], loaded.model.predict_proba(validated.X.iloc[split.test])[:, 1]
    )
    assert auc == pytest.approx(result.champion_result.test["roc_auc"], abs=1e-12)


def test_champion_follows_the_cross_validation_rule(trained):
    _, result = trained
    evidence = result.selection_evidence
    champion = result.champion_result
    assert evidence.champion == champion.name == result.champion
    chosen = evidence.evidence(champion.name)
    assert chosen.within_rule
    assert chosen.gap <= chosen.gap_se + 1e-12
    screening = evidence.screening
    if screening is not None:  # the finalists were measured again on new folds
        if screening.champion == screening.best_by_cv == "ensemble":  # against the best single
            finalists = {"ensemble", screening.candidates[1].name}
        else:  # those within the rule
            finalists = set(screening.finalists())
        assert {c.name for c in evidence.candidates} == finalists
        assert all(len(c.fold_aucs) == 2 * 5 for c in evidence.candidates)
    simpler_within = [
        c for c in evidence.candidates if c.within_rule and c.complexity < champion.complexity
    ]
    assert not simpler_within
    assert champion.cv_auc_mean > 0.8
    assert sum(c.champion for c in result.candidates) == 1
    assert all(len(c.fold_aucs) == 5 for c in result.candidates)


def test_no_register_leaves_the_registry_empty(settings):
    frame, spec = load_builtin("credit_data")
    result = train_and_register(
        settings,
        frame=frame,
        spec=spec,
        dataset_name="credit_data",
        profile="fast",
        models=["logistic_regression"],
        register=False,
    )
    assert result.registered_version is None
    assert not champion_exists(settings)


def test_user_file_needs_a_spec(tmp_path):
    from creditops.exceptions import ConfigurationError

    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigurationError, match="--data needs --spec"):
        load_training_data(data_path=path)
