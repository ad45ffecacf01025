"""The command line as a user runs it: real files, a real store, exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from creditops.cli import app
from creditops.config import reset_settings

runner = CliRunner()


def test_an_invalid_setting_is_one_line_naming_the_variable_not_a_traceback(settings, monkeypatch):
    secret = "short-key"
    monkeypatch.setenv("CREDITOPS_API_KEY", secret)
    monkeypatch.setenv("CREDITOPS_DECISION_THRESHOLD", "2")
    reset_settings()
    result = runner.invoke(app, ["where"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "CREDITOPS_API_KEY must be at least 16 characters" in result.output
    assert "CREDITOPS_DECISION_THRESHOLD: Input should be less than 1" in result.output
    assert secret not in result.output
    assert "Traceback" not in result.output


def test_datasets_lists_the_catalog_as_json():
    result = runner.invoke(app, ["datasets", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["credit_data"]["rows"] == 4454
    assert rows["lending_club"]["target"] == "Class"


@pytest.mark.slow
def test_train_on_a_user_csv_with_a_spec(settings, lending_club, tmp_path: Path):
    data = tmp_path / "loans.csv"
    lending_club.to_csv(data, index=False)
    spec = tmp_path / "loans.yaml"
    spec.write_text(
        "target: Class\npositive: bad\nprotected: [addr_state]\nid: loan_id\n", encoding="utf-8"
    )
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(data),
            "--spec",
            str(spec),
            "--profile",
            "fast",
            "--model",
            "logistic_regression",
            "--model",
            "xgboost",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["dataset"] == "loans.csv"
    assert summary["n_rows"] == 9857
    assert [c["name"] for c in summary["candidates"]] == ["logistic_regression", "xgboost"]
    assert summary["registered_version"] == "1"
    champion = next(c for c in summary["candidates"] if c["champion"])
    assert champion["test"]["roc_auc"] > 0.6

    again = runner.invoke(app, ["train", "--if-no-champion", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["skipped"] is True

    where = runner.invoke(app, ["where", "--json"])
    assert json.loads(where.stdout)["champion_version"] == "1"


def test_validation_failure_exits_2_and_names_the_column(settings, tmp_path: Path):
    data = tmp_path / "bad.csv"
    data.write_text("Income,Status\n1,good\n2,good\n3,good\n", encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text("target: Status\npositive: bad\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "--data", str(data), "--spec", str(spec)])
    assert result.exit_code == 2
    assert "target 'Status' has only one class" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_predict_decides_a_file_logs_it_and_refuses_a_bad_row(
    trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import shutil

    import pandas as pd

    from creditops.config import reset_settings
    from creditops.data.datasets import load_builtin
    from creditops.store.predlog import PredictionLog

    source, _ = trained
    home = tmp_path / "home"
    shutil.copytree(source.home, home)
    (home / "predictions.db").unlink(missing_ok=True)
    monkeypatch.setenv("CREDITOPS_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reset_settings()
    frame, spec = load_builtin("credit_data")
    applications = frame.head(300)  # with the id and the outcome column, as files often are
    data = tmp_path / "applications.csv"
    applications.to_csv(data, index=False)
    out = tmp_path / "decisions.parquet"

    result = runner.invoke(app, ["predict", str(data), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 300
    assert summary["logged"] is True
    decisions = pd.read_parquet(out)
    # CSV cells carry no type: the id comes back as the text it was in the file
    assert decisions[spec.id].tolist() == applications[spec.id].astype(str).tolist()
    declined = decisions["decision"] != "approve"
    assert declined.any()
    assert (decisions.loc[declined, "reasons"].str.len() > 0).all()
    assert (decisions.loc[~declined, "reasons"] == "").all()
    assert decisions["probability_of_default"].between(0, 1).all()
    with PredictionLog.for_home(home) as log:
        assert log.count() == 300
        logged = log.get(decisions["prediction_id"].iloc[0])
        assert logged is not None
        assert logged.probability == decisions["probability_of_default"].iloc[0]

    what_if = runner.invoke(
        app, ["predict", str(data), "--out", str(tmp_path / "w.csv"), "--no-log"]
    )
    assert what_if.exit_code == 0, what_if.output

    broken = applications.astype({"Income": "object"})
    broken.loc[broken.index[7], "Income"] = "lots"
    bad = tmp_path / "bad.csv"
    broken.to_csv(bad, index=False)
    refused = runner.invoke(app, ["predict", str(bad), "--out", str(tmp_path / "x.csv")])
    assert refused.exit_code == 2
    assert "applications[7].Income" in refused.output
    assert "lots" not in refused.output
    assert not (tmp_path / "x.csv").exists()
    with PredictionLog.for_home(home) as log:
        assert log.count() == 300  # neither the what-if run nor the refused file logged anything
    reset_settings()
