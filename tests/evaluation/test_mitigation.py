"""Mitigation comparison: the model beside a demographic-parity-mitigated version on credit_data."""

import json

import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from creditops.evaluation.mitigation import compare_mitigation


def test_threshold_optimizer_moves_disparate_impact_towards_one(credit_case):
    model = credit_case.models["xgboost"]
    sensitive_train = credit_case.frame.loc[credit_case.X_train.index, ["Age"]]
    result = compare_mitigation(
        model,
        credit_case.X_train,
        credit_case.y_train,
        sensitive_train,
        credit_case.X_test,
        credit_case.y_test,
        credit_case.protected_test[["Age"]],
        method="threshold_optimizer",
        threshold=0.5,
    )
    proba = model.predict_proba(credit_case.X_test)[:, 1]
    before, after = result.unmitigated, result.mitigated
    assert before.accuracy == pytest.approx(accuracy_score(credit_case.y_test, proba >= 0.5))
    assert before.roc_auc == pytest.approx(roc_auc_score(credit_case.y_test, proba))
    assert after.roc_auc is None
    assert result.attribute == "Age"
    assert [g.group for g in after.approval_rates] == ["<25", "25–39", "40–59", "60+"]
    assert abs(1 - after.disparate_impact_ratio) < abs(1 - before.disparate_impact_ratio)
    assert result.disparate_impact_closer_to_one is True
    assert result.accuracy_cost == pytest.approx(before.accuracy - after.accuracy)
    assert -0.1 < result.accuracy_cost < 0.1  # parity costs a little accuracy, not the model
    json.dumps(result.model_dump(mode="json"), allow_nan=False)


def test_exponentiated_gradient_on_marital_pools_groups_it_cannot_fit(credit_case):
    sensitive_train = credit_case.frame.loc[credit_case.X_train.index, "Marital"]
    result = compare_mitigation(
        credit_case.models["xgboost"],
        credit_case.X_train,
        credit_case.y_train,
        sensitive_train,
        credit_case.X_test,
        credit_case.y_test,
        credit_case.protected_test["Marital"],
        method="exponentiated_gradient",
        threshold=0.5,
    )
    before, after = result.unmitigated, result.mitigated
    assert result.method == "exponentiated_gradient"
    assert abs(1 - after.disparate_impact_ratio) < abs(1 - before.disparate_impact_ratio)
    assert any("pooled" in note for note in result.notes)  # the lone "missing" training row
    judged = [g.approval_rate for g in after.approval_rates if not g.too_small]
    assert after.disparate_impact_ratio == pytest.approx(min(judged) / max(judged))
    assert after.demographic_parity_difference == pytest.approx(max(judged) - min(judged))
    assert {g.group for g in after.approval_rates if g.too_small} == {
        "divorced",
        "separated",
        "widow",
    }
    assert result.balanced_accuracy_cost == pytest.approx(
        before.balanced_accuracy - after.balanced_accuracy
    )
