"""Two registered versions compared on their shared test split: the figures are those of the
rows neither trained on, approval by group comes from the one approval-rate function, a pair
is computed once per process, and versions that share no split are refused."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.evaluation.fairness import four_fifths_verdict
from creditops.exceptions import IncomparableVersionsError, ModelNotFoundError
from creditops.registry import load_model, load_version_data, register_trained
from creditops.registry.catalog import NOT_EVALUATED, version_summaries
from creditops.registry.compare import _check_same_split, compare_versions
from creditops.training.train import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """v1 logistic regression (champion) and v2 PCA→LR on the same split of credit_data; v3
    logistic regression on another split (another seed)."""
    settings = Settings(home=tmp_path_factory.mktemp("compare-home"))
    frame, spec = load_builtin("credit_data")
    for seed, model, alias in (
        (0, "logistic_regression", "champion"),
        (0, "pca_logistic", "challenger"),
        (7, "logistic_regression", None),
    ):
        at_seed = settings.model_copy(update={"seed": seed})
        result = train(
            at_seed,
            frame=frame,
            spec=spec,
            dataset_name="credit_data",
            profile="fast",
            models=[model],
        )
        register_trained(at_seed, result, alias=alias)
    return settings


def test_both_versions_are_measured_on_the_same_test_rows(versions: Settings) -> None:
    comparison = compare_versions(versions, "1", "2", n_boot=300)
    loaded = load_model(versions, "1")
    data = load_version_data(versions, loaded)
    test, y = data.part("test", loaded.spec)
    assert comparison.test_rows == len(test) == len(data.split.test)
    assert comparison.bad_rate == pytest.approx(y.mean())
    assert [v.model_version for v in comparison.versions] == ["1", "2"]
    assert [v.candidate for v in comparison.versions] == ["logistic_regression", "pca_logistic"]
    aucs = []
    for side in comparison.versions:
        model = load_model(versions, side.model_version)
        auc = roc_auc_score(y, model.model.predict_proba(test[model.spec.features])[:, 1])
        aucs.append(auc)
        assert side.metrics["roc_auc"] == pytest.approx(auc)
        low, high = side.metrics["roc_auc_ci"]
        assert low < auc < high
        assert len(side.metrics["roc_curve"]["fpr"]) <= 200  # thinned for drawing
        assert side.outcome.approve_rate + side.outcome.refer_rate + side.outcome.decline_rate == (
            pytest.approx(1.0)
        )
    assert comparison.auc_difference == pytest.approx(aucs[1] - aucs[0])
    low, high = comparison.auc_difference_ci
    assert low <= comparison.auc_difference <= high
    assert comparison.difference_is_clear == (low > 0 or high < 0)


def test_fairness_by_group_uses_each_versions_policy_and_the_four_fifths_rule(
    versions: Settings,
) -> None:
    comparison = compare_versions(versions, "1", "2", n_boot=300)
    assert [a.attribute for a in comparison.fairness] == ["Age", "Marital"]
    for attribute in comparison.fairness:
        assert sum(g.size for g in attribute.groups) == comparison.test_rows
        for index, rates in enumerate(attribute.rates):
            assert rates.verdict == four_fifths_verdict(rates.disparate_impact_ratio)
            assert [g.approval_rates[index] for g in attribute.groups] == [
                g.approval_rate for g in rates.groups
            ]
            approved = sum(g.approved for g in rates.groups)
            share = comparison.versions[index].outcome.approve_rate
            assert approved / comparison.test_rows == pytest.approx(share)
        judged = [g for g in attribute.groups if g.status == "judged"]
        assert judged
        assert all(r is not None for g in judged for r in g.ratios_to_highest)


def test_a_pair_is_computed_once(versions: Settings) -> None:
    first = compare_versions(versions, "2", "1", n_boot=300)
    started = time.perf_counter()
    again = compare_versions(versions, "2", "1", n_boot=300)
    assert again is first
    assert time.perf_counter() - started < 0.5  # two registry look-ups, no model loaded
    assert [v.model_version for v in first.versions] == ["2", "1"]


def test_versions_that_share_no_test_split_are_refused(versions: Settings) -> None:
    with pytest.raises(IncomparableVersionsError, match="different data or splits"):
        compare_versions(versions, "1", "3", n_boot=300)
    with pytest.raises(IncomparableVersionsError, match="two different versions"):
        compare_versions(versions, "2", "2")
    for missing in ("9", "champion", "1; drop"):
        with pytest.raises(ModelNotFoundError, match="is not registered"):
            compare_versions(versions, "1", missing)
    # Another dataset: said in words, before any row is compared.
    loaded = [load_model(versions, v) for v in ("1", "2")]
    data = [load_version_data(versions, m) for m in loaded]
    loaded[1].tags["dataset"] = "credit_data+decisions"
    with pytest.raises(IncomparableVersionsError, match="trained on credit_data and v2 on"):
        _check_same_split(loaded, data)
    data[1].frame = data[1].frame.assign(Income=np.zeros(len(data[1].frame)))
    loaded[1].tags["dataset"] = "credit_data"
    with pytest.raises(IncomparableVersionsError, match="different data or splits"):
        _check_same_split(loaded, data)


def test_the_list_says_when_a_version_has_no_stored_evaluation(versions: Settings) -> None:
    rows = {row.version: row for row in version_summaries(versions)}
    assert rows["1"].fairness_verdict is None
    assert rows["1"].fairness_shown == NOT_EVALUATED
