import numpy as np
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from creditops.evaluation.metrics import HEADLINE_METRICS, classification_metrics, ks_statistic


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    proba = np.clip(0.3 + 0.3 * y + rng.normal(0, 0.2, 2000), 0.001, 0.999)
    return y, proba


def test_gini_is_two_auc_minus_one(scores):
    y, proba = scores
    metrics = classification_metrics(y, proba)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, proba))
    assert metrics["gini"] == pytest.approx(2 * metrics["roc_auc"] - 1)
    assert set(metrics) == set(HEADLINE_METRICS)


def test_ks_matches_two_sample_statistic(scores):
    y, proba = scores
    expected = ks_2samp(proba[y == 1], proba[y == 0]).statistic
    assert ks_statistic(y, proba) == pytest.approx(expected, abs=1e-9)


def test_perfect_and_threshold_metrics():
    y = np.array([0, 0, 1, 1])
    proba = np.array([0.1, 0.4, 0.6, 0.9])
    metrics = classification_metrics(y, proba, threshold=0.5)
    assert metrics["roc_auc"] == 1.0
    assert metrics["ks"] == 1.0
    assert metrics["accuracy"] == 1.0
    strict = classification_metrics(y, proba, threshold=0.7)
    assert strict["recall"] == 0.5
    assert strict["precision"] == 1.0


def test_bootstrap_interval_brackets_auc_and_is_seeded(scores):
    from creditops.evaluation.metrics import bootstrap_auc_interval

    y, proba = scores
    low, high = bootstrap_auc_interval(y, proba, n_boot=500, seed=1)
    auc = roc_auc_score(y, proba)
    assert low < auc < high
    assert high - low < 0.05
    assert bootstrap_auc_interval(y, proba, n_boot=500, seed=1) == (low, high)


def test_paired_difference_interval_brackets_the_difference_and_sees_a_real_one(scores):
    from creditops.evaluation.metrics import paired_auc_difference_interval

    y, proba = scores
    rng = np.random.default_rng(2)
    noisier = np.clip(proba + rng.normal(0, 0.3, len(proba)), 0.001, 0.999)
    low, high = paired_auc_difference_interval(y, proba, noisier, n_boot=500, seed=1)
    difference = roc_auc_score(y, noisier) - roc_auc_score(y, proba)
    assert low < difference < high < 0  # the noisier scores are clearly worse
    assert paired_auc_difference_interval(y, proba, noisier, n_boot=500, seed=1) == (low, high)
    # A model against itself differs by exactly nothing on every resample.
    assert paired_auc_difference_interval(y, proba, proba, n_boot=200) == (0.0, 0.0)
    with pytest.raises(ValueError, match="differ"):
        paired_auc_difference_interval(y, proba, proba[:-1])


def test_rank_auc_matches_scikit_learn_with_ties():
    from creditops.evaluation.metrics import rank_auc

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    proba = np.round(rng.random(300), 1)  # many ties
    batch = np.stack([proba, proba[::-1]])
    expected = [roc_auc_score(y, proba), roc_auc_score(y, proba[::-1])]
    positives = batch[:, y == 1]
    negatives = batch[:, y == 0]
    assert rank_auc(positives, negatives) == pytest.approx(expected, abs=1e-12)


def test_detailed_metrics_by_hand():
    from creditops.evaluation.metrics import detailed_metrics

    y = np.array([0, 0, 0, 0, 1, 1, 0, 1, 1, 1])
    proba = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.2, 0.8, 0.9, 0.55])
    metrics = detailed_metrics(y, proba, threshold=0.5, n_boot=200)
    assert metrics["confusion_matrix"] == {"tn": 4, "fp": 1, "fn": 1, "tp": 4}
    assert metrics["specificity"] == pytest.approx(4 / 5)
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean((proba - y) ** 2)))
    lift = metrics["lift"]
    assert [row["bads"] for row in lift] == [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
    assert lift[-1]["cumulative_gain"] == pytest.approx(1.0)
    assert lift[0]["lift"] == pytest.approx(1 / 0.5)


def test_expected_calibration_error_by_hand():
    from creditops.evaluation.metrics import calibration_table

    y = np.array([0, 0, 1, 1])
    proba = np.array([0.1, 0.3, 0.6, 0.8])
    rows, ece = calibration_table(y, proba, n_bins=2)
    assert [r["mean_predicted"] for r in rows] == pytest.approx([0.2, 0.7])
    assert [r["observed_rate"] for r in rows] == pytest.approx([0.0, 1.0])
    assert ece == pytest.approx(0.5 * 0.2 + 0.5 * 0.3)
