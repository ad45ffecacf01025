"""The monitor's checks fed a decision log chunk by chunk give what they give on one frame of
the whole window, on SQLite and PostgreSQL; the approximations keep their stated bounds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from creditops.monitoring.drift import DataDriftCalculator, DriftConfig
from creditops.monitoring.drift_methods import WASSERSTEIN_GRID_BINS, get_method
from creditops.monitoring.estimated import EstimatedPerformanceCalculator
from creditops.monitoring.fairness_watch import FairnessCalculator
from creditops.monitoring.performance import PerformanceCalculator
from creditops.monitoring.score_summary import ScoreSummary
from creditops.monitoring.windows import PerformanceConfig
from creditops.store.decision_chunks import read_decision_chunks
from creditops.store.predlog import PredictionLog, PredictionRecord
from decision_frames import MONDAY, calibrated
from helpers import DATABASES, database_url

FEATURES = ["Income", "Seniority", "Home", "Records"]
PROTECTED = ["Age", "Marital"]


def _reference(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "Income": rng.lognormal(4.8, 0.5, n).round(),
            "Seniority": rng.integers(0, 30, n).astype(float),
            "Home": rng.choice(["rent", "owner", "parents", "other"], n, p=[0.4, 0.4, 0.15, 0.05]),
            "Records": rng.choice([0.0, 1.0], n, p=[0.8, 0.2]),
        }
    )


def _fill(log: PredictionLog, n: int, seed: int) -> None:
    """``n`` decisions over three weeks, a shifted income, some outcomes, a new category."""
    rng = np.random.default_rng(seed)
    current = _reference(n, seed)
    current["Income"] = (current["Income"] * 1.2).where(rng.random(n) > 0.05)
    current.loc[rng.random(n) < 0.02, "Home"] = "boat"
    proba, outcome = calibrated(n, seed)
    records = []
    for i in range(n):
        row = {k: (None if v != v else v) for k, v in current.iloc[i].items()}
        age = None if i % 97 == 0 else int(rng.integers(19, 70))
        records.append(
            PredictionRecord(
                created_at=MONDAY + timedelta(minutes=int(i * 21 * 24 * 60 / n)),
                model_name="m",
                model_version="1",
                features=row,
                protected={"Age": age, "Marital": str(rng.choice(["single", "married"]))},
                probability=float(proba[i]),
                points=500,
                decision="approve" if proba[i] < 0.3 else "decline",
                latency_ms=1.0,
            )
        )
    log.write_many(records)
    labelled = [(r.prediction_id, int(outcome[i])) for i, r in enumerate(records) if i % 3]
    log.record_outcomes(labelled)


@pytest.fixture(params=DATABASES)
def log(request: pytest.FixtureRequest, tmp_path: Path):
    with database_url(request.param, tmp_path) as url:
        opened = PredictionLog(url)
        try:
            _fill(opened, 3000, seed=7)
            yield opened
        finally:
            opened.close()


def _chunks(log: PredictionLog, rows: int, **kwargs) -> list[pd.DataFrame]:
    return list(
        read_decision_chunks(log, features=FEATURES, protected=PROTECTED, chunk_rows=rows, **kwargs)
    )


def _same(streamed: dict, whole: dict, *, rel: float = 1e-9) -> None:
    """Equal JSON, floats within ``rel`` (sums taken in another order)."""
    if isinstance(whole, dict):
        assert set(streamed) == set(whole)
        for key in whole:
            _same(streamed[key], whole[key], rel=rel)
    elif isinstance(whole, list):
        assert len(streamed) == len(whole)
        for a, b in zip(streamed, whole, strict=True):
            _same(a, b, rel=rel)
    elif isinstance(whole, float):
        assert streamed == pytest.approx(whole, rel=rel, abs=1e-12)
    else:
        assert streamed == whole


def test_a_window_is_read_in_chunks_with_the_columns_of_window(log: PredictionLog) -> None:
    chunks = _chunks(log, 700)
    assert [len(c) for c in chunks] == [700, 700, 700, 700, 200]
    whole = log.window()
    joined = pd.concat(chunks, ignore_index=True)
    assert joined["created_at"].tolist() == whole["created_at"].tolist()
    for column in ["probability", "decision", "outcome", *FEATURES, *PROTECTED]:
        pd.testing.assert_series_equal(
            joined[column], whole[column], check_dtype=False, check_names=False
        )
    assert chunks[0].attrs["feature_columns"] == whole.attrs["feature_columns"]
    last = _chunks(log, 400, last_n=1000, until=MONDAY + timedelta(days=14))
    expected = log.window(last_n=1000, until=MONDAY + timedelta(days=14))
    assert sum(len(c) for c in last) == 1000
    assert pd.concat(last)["created_at"].tolist() == expected["created_at"].tolist()


@pytest.mark.parametrize("method", ["auto", "psi", "jensenshannon", "ks", "wasserstein"])
def test_drift_streamed_equals_drift_on_one_frame(log: PredictionLog, method: str) -> None:
    config = DriftConfig(numeric_method=method)
    reference = _reference(800 if method == "auto" else 5000, seed=1)
    scores, _ = calibrated(2000, seed=2)
    calculator = DataDriftCalculator(config).fit(
        reference, ["Income", "Seniority", "Records"], ["Home"], reference_scores=scores
    )
    whole = log.window()
    expected = calculator.calculate(whole, current_scores=whole["probability"].to_numpy())
    streamed = calculator.calculate_chunks(_chunks(log, 450), score_column="probability")
    _same(streamed.to_dict(), expected.to_dict())
    assert streamed.feature("Home").unseen_categories == ["boat"]


@pytest.mark.parametrize(
    "cls", [PerformanceCalculator, EstimatedPerformanceCalculator, FairnessCalculator]
)
def test_windowed_checks_streamed_equal_one_frame(log: PredictionLog, cls: type) -> None:
    proba, y = calibrated(4000, seed=3)
    config = PerformanceConfig(window="7D", threshold=0.3, min_labelled_rows=100)
    calculator = cls(config)
    calculator = calculator.fit() if cls is FairnessCalculator else calculator.fit(y, proba)
    expected = calculator.calculate(log.window())
    streamed = calculator.calculate_chunks(_chunks(log, 333))
    assert len(streamed.windows) == 3
    _same(streamed.to_dict(), expected.to_dict())


def test_wasserstein_on_its_grid_stays_within_its_bound() -> None:
    rng = np.random.default_rng(0)
    reference = np.sort(rng.lognormal(8.0, 1.0, 5000))
    current = rng.lognormal(8.1, 1.1, 300_000)  # every value distinct: the grid is used
    method = get_method("wasserstein")(0.1, DriftConfig())
    method.fit_numeric(reference)
    summary = method.begin_numeric()
    for part in np.array_split(current, 10):
        summary.update(part)
    assert summary.binned
    approximate, _ = method.measure_summary(summary)
    exact, _ = method.measure_numeric(current)
    bound = method.error_bound(summary)
    span = reference[-1] - reference[0]
    assert bound == pytest.approx(span / WASSERSTEIN_GRID_BINS / np.std(reference))
    assert abs(approximate - exact) <= bound
    assert abs(approximate - exact) < 1e-4


def test_ks_from_counts_is_scipys_on_the_raw_values() -> None:
    rng = np.random.default_rng(1)
    reference = np.sort(rng.integers(0, 40, 900).astype(float))
    for n in (500, 60_000):  # scipy's exact p-value, then its asymptotic one
        current = rng.integers(0, 45, n) + 0.5 * (rng.random(n) < 0.3)
        method = get_method("ks")(0.05, DriftConfig())
        method.fit_numeric(reference)
        summary = method.begin_numeric()
        for part in np.array_split(current, 7):
            summary.update(part)
        result = stats.ks_2samp(reference, current)
        assert method.measure_summary(summary) == (result.statistic, result.pvalue)


def test_binned_scores_keep_the_auc_within_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from creditops.evaluation.metrics import ks_statistic
    from creditops.monitoring import score_summary

    monkeypatch.setattr(score_summary, "EXACT_SCORES", 1000)
    proba, y = calibrated(200_000, seed=5)
    summary = ScoreSummary(0.5)
    for part, labels in zip(np.array_split(proba, 8), np.array_split(y, 8), strict=True):
        summary.update(part, part, labels.astype(float))
    assert summary.binned
    from sklearn.metrics import roc_auc_score

    exact = roc_auc_score(y, proba)
    bound = summary.auc_error_bound()
    assert 0 < bound < 1e-4
    assert abs(summary.roc_auc() - exact) <= bound
    assert abs(summary.ks() - ks_statistic(y, proba)) < 1e-3
    assert summary.brier() == pytest.approx(np.mean((proba - y) ** 2), rel=1e-9)
