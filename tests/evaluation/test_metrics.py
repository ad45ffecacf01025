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
