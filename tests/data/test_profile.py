"""The data profile over real files: figures checked against pandas and validation, files without
outcomes, PSI, and every kind of bad file refused with the problem named."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from creditops.cli import app
from creditops.data.datasets import load_builtin
from creditops.data.profile import iv_strength, profile_file, profile_frame, render_profile_html
from creditops.data.spec import DatasetSpec
from creditops.data.validate import single_feature_auc
from creditops.exceptions import DataValidationError

SPEC = {
    "target": "Status",
    "positive": "bad",
    "protected": ["Age", "Marital"],
    "id": "applicant_id",
}


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path, DatasetSpec]:
    frame, _ = load_builtin("credit_data")
    folder = tmp_path_factory.mktemp("profile")
    path = folder / "credit.csv"
    frame.to_csv(path, index=False)
    return frame, path, DatasetSpec.model_validate(SPEC)


@pytest.fixture(scope="module")
def profiled(credit):
    _, path, spec = credit
    return profile_file(path, spec)


def test_class_balance_and_every_column_in_its_role(credit, profiled) -> None:
    frame, _, _ = credit
    bad = (frame["Status"] == "bad").sum()
    assert profiled.rows == len(frame)
    assert (profiled.balance.bads, profiled.balance.goods) == (bad, len(frame) - bad)
    roles = {f.name: (f.kind, f.role) for f in profiled.features}
    assert roles["Income"] == ("numeric", "feature")
    assert roles["Home"] == ("categorical", "feature")
    assert roles["Records"] == ("categorical", "feature")  # "yes"/"no" stay text
    assert roles["Age"] == ("numeric", "protected")
    assert roles["Marital"] == ("categorical", "protected")
    assert "applicant_id" not in roles
    assert "Status" not in roles


def test_numeric_bins_missing_rate_and_auc_agree_with_pandas_and_validation(
    credit, profiled
) -> None:
    frame, _, _ = credit
    y = (frame["Status"] == "bad").to_numpy(dtype=int)
    for name in ("Income", "Seniority", "Debt", "Assets"):
        feature = profiled.feature(name)
        assert feature.missing == frame[name].isna().sum()
        assert sum(b.count for b in feature.bins) == len(frame)
        assert sum(b.bads for b in feature.bins) == y.sum()
        assert feature.auc == pytest.approx(
            single_feature_auc(frame[name], y, categorical=False), abs=1e-12
        )
        assert feature.stats["median"] == pytest.approx(frame[name].median(), abs=1.0)
        assert feature.stats["mean"] == pytest.approx(frame[name].mean())
        assert feature.histogram is not None
        assert sum(feature.histogram.goods) + sum(feature.histogram.bads) == (
            frame[name].notna().sum()
        )
    income = profiled.feature("Income")
    assert income.bins[-1].label == "Missing"
    assert income.bins[-1].count == frame["Income"].isna().sum()


def test_categorical_woe_and_iv_by_hand(credit, profiled) -> None:
    frame, _, _ = credit
    table = frame.assign(bad=frame["Status"] == "bad").groupby("Home", dropna=False)["bad"]
    counts = table.agg(["sum", "count"])
    total_bads, total_goods = counts["sum"].sum(), (counts["count"] - counts["sum"]).sum()
    expected_iv = 0.0
    home = {b.label: b for b in profiled.feature("Home").bins}
    for level, row in counts.iterrows():
        bads, goods = row["sum"], row["count"] - row["sum"]
        woe = math.log(((goods or 0.5) / total_goods) / ((bads or 0.5) / total_bads))
        expected_iv += (goods / total_goods - bads / total_bads) * woe
        label = "Missing" if pd.isna(level) else str(level)
        assert home[label].count == row["count"]
        assert home[label].bad_rate == pytest.approx(bads / row["count"])
        assert home[label].woe == pytest.approx(woe)
    feature = profiled.feature("Home")
    assert feature.information_value == pytest.approx(expected_iv)
    assert feature.strength == iv_strength(expected_iv)
    # riskier than average has negative WoE (the scorecard's convention)
    assert home["owner"].woe > 0 > home["other"].woe


def test_the_iv_table_is_sorted_and_correlations_are_pearsons(credit, profiled) -> None:
    frame, _, _ = credit
    ivs = [f.information_value for f in profiled.by_information_value()]
    assert ivs == sorted(ivs, reverse=True)
    names = profiled.correlations.features
    i, j = names.index("Amount"), names.index("Price")
    assert profiled.correlations.matrix[i][j] == pytest.approx(
        frame["Amount"].corr(frame["Price"]), abs=1e-9
    )


def test_parquet_and_an_in_memory_frame_give_the_same_profile(credit, profiled, tmp_path) -> None:
    frame, _, spec = credit
    parquet = tmp_path / "credit.parquet"
    frame.to_parquet(parquet)
    for other in (profile_file(parquet, spec), profile_frame(frame, spec)):
        for a, b in zip(profiled.features, other.features, strict=True):
            assert (a.name, a.missing, a.distinct) == (b.name, b.missing, b.distinct)
            assert a.information_value == pytest.approx(b.information_value)
            assert a.auc == pytest.approx(b.auc)


def test_a_file_of_applications_without_outcomes_gets_distributions_and_psi(credit) -> None:
    frame, _, spec = credit
    applications = frame.drop(columns=["Status"])
    same = profile_frame(applications, spec, reference=frame, reference_name="training rows")
    assert same.balance is None
    assert same.reference == "training rows"
    for feature in same.features:
        assert feature.information_value is None
        assert feature.auc is None
        assert feature.psi == pytest.approx(0.0, abs=1e-12)
    shifted = applications.assign(Income=applications["Income"] * 1.6)
    moved = profile_frame(shifted, spec, reference=frame)
    assert moved.feature("Income").psi > 0.25  # a large shift
    assert moved.feature("Seniority").psi == pytest.approx(0.0, abs=1e-12)
    html = render_profile_html(moved)
    assert "no <code>Status</code> column" in html


def test_leakage_is_warned_in_validations_words(credit) -> None:
    frame, _, spec = credit
    leaky = frame.assign(Echo=(frame["Status"] == "bad").astype(int) * 10.0)
    result = profile_frame(leaky, spec)
    echo = result.feature("Echo")
    assert echo.auc == pytest.approx(1.0)
    assert echo.leakage
    assert any("'Echo' alone predicts the target with ROC AUC 1.000" in w for w in result.warnings)


def _spec_file(folder: Path, **changes) -> Path:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return path


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_bytes(b""), r"is empty"),
        (lambda p: p.write_bytes(bytes(range(256)) * 40), r"not a CSV file"),
        (
            lambda p: p.write_bytes("Status,Age\nbad,caf\u00e9\ngood,x\n".encode("latin-1")),
            r"not UTF-8 text",
        ),
        (lambda p: p.write_text("Status,Age\n"), r"no rows"),
        (lambda p: p.write_text("Status,Income\nbad,3\n"), r"lacks column\(s\).*'Age' \(protected"),
        (lambda p: p.write_text("Status,Age\ngood,3\ngood,4\n"), r"positive value 'bad'"),
    ],
)
def test_bad_files_are_refused_naming_the_problem(tmp_path, write, message) -> None:
    path = tmp_path / "upload.csv"
    write(path)
    spec = DatasetSpec.model_validate({"target": "Status", "positive": "bad", "protected": ["Age"]})
    with pytest.raises(DataValidationError, match=message):
        profile_file(path, spec)


def test_text_in_a_numeric_column_names_the_column_and_the_row(credit, tmp_path) -> None:
    frame, _, _ = credit
    broken = frame.astype({"Income": object})
    broken.loc[3000, "Income"] = "n/a"
    path = tmp_path / "broken.csv"
    broken.to_csv(path, index=False)
    spec = DatasetSpec.model_validate(
        {**SPEC, "features": {"numeric": ["Income", "Debt"], "categorical": ["Home"]}}
    )
    with pytest.raises(DataValidationError, match=r"'Income' .* 'n/a' in data row 3001") as error:
        profile_file(path, spec)
    assert error.value.column == "Income"


def test_cli_prints_the_iv_table_writes_html_and_json(credit, tmp_path, monkeypatch) -> None:
    _, path, _ = credit
    monkeypatch.setenv("CREDITOPS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    spec = _spec_file(tmp_path)
    html = tmp_path / "profile.html"
    runner = CliRunner()
    result = runner.invoke(app, ["profile", str(path), "--spec", str(spec), "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert "Seniority" in result.output
    assert "strong" in result.output
    page = html.read_text()
    assert "<h2>Information value</h2>" in page
    assert "<script" not in page
    as_json = runner.invoke(app, ["profile", str(path), "--spec", str(spec), "--json"])
    payload = json.loads(as_json.stdout)
    assert payload["schema_version"] == 1
    assert payload["balance"]["bads"] == 1254
    refused = runner.invoke(app, ["profile", str(tmp_path / "nope.csv"), "--spec", str(spec)])
    assert refused.exit_code == 2
    assert "no such file" in refused.output
    # nothing spilled into the working directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.html", "spec.yaml"]


def test_single_feature_auc_matches_validation_on_random_ties() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 3000)
    values = np.where(rng.random(3000) < 0.1, np.nan, rng.integers(0, 7, 3000) + y * 0.5)
    frame = pd.DataFrame({"x": values, "Status": np.where(y == 1, "bad", "good")})
    spec = DatasetSpec.model_validate({"target": "Status", "positive": "bad"})
    feature = profile_frame(frame, spec).feature("x")
    assert feature.auc == pytest.approx(
        single_feature_auc(frame["x"], y, categorical=False), abs=1e-12
    )


def test_awkward_columns_are_profiled_not_refused(tmp_path) -> None:
    rng = np.random.default_rng(3)
    n = 2000
    y = rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "v": rng.normal(size=n) + y,  # a name the profile's own queries must not capture
            "__bad": rng.integers(0, 3, n),
            "customer_ref": [f"C{i:05d}" for i in range(n)],  # an identifier held as text
            "flag": (rng.random(n) < 0.2).astype(int),  # a 0/1 column: deciles collapse
            "blank": [""] * n,
            "Status": np.where(y == 1, "bad", "good"),
        }
    )
    path = tmp_path / "awkward.csv"
    frame.to_csv(path, index=False)
    spec = DatasetSpec.model_validate(
        {
            "target": "Status",
            "positive": "bad",
            "features": {
                "numeric": ["v", "__bad", "flag", "blank"],
                "categorical": ["customer_ref"],
            },
        }
    )
    result = profile_file(path, spec)
    assert result.feature("v").auc > 0.7
    ident = result.feature("customer_ref")
    assert ident.auc == pytest.approx(0.5, abs=0.02)  # one row per level: no signal
    assert not ident.leakage
    assert any("is it an identifier?" in w for w in result.warnings)
    flag = result.feature("flag")
    assert all(b.count > 0 for b in flag.bins)
    assert sum(b.count for b in flag.bins) == n
    blank = result.feature("blank")
    assert blank.missing == n
    assert [b.label for b in blank.bins] == ["Missing"]


def test_numeric_coded_categories_compare_alike_in_psi() -> None:
    frame = pd.DataFrame({"grade": [1.0, 2.0, 3.0, None] * 50, "Status": ["bad", "good"] * 100})
    current = pd.DataFrame({"grade": ["1", " 2", "3", ""] * 50, "Status": ["bad", "good"] * 100})
    spec = DatasetSpec.model_validate(
        {"target": "Status", "positive": "bad", "features": {"categorical": ["grade"]}}
    )
    result = profile_frame(current, spec, reference=frame)
    assert result.feature("grade").psi == pytest.approx(0.0, abs=1e-12)
