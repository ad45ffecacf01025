"""The command line as a user runs it: real files, a real store, exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from creditops.cli import app

runner = CliRunner()


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
