"""The selection rationale of a model card, written from the measured results.

Every sentence states a figure from the evaluation, so the card changes when the evidence does.
"""

from __future__ import annotations

from typing import Any

from creditops.evaluation.review import EvaluationResult

_FAMILY = {
    "logistic_regression": "a logistic regression (one coefficient per transformed feature)",
    "scorecard": "a weight-of-evidence logistic scorecard (fixed points per bin of each feature)",
    "pca_logistic": "a logistic regression on principal components (linear in the features)",
    "random_forest": "a random forest (an average of deep decision trees)",
    "xgboost": "a gradient-boosted tree ensemble (XGBoost)",
    "lightgbm": "a gradient-boosted tree ensemble with native categorical splits (LightGBM)",
    "neural_network": "a feed-forward neural network (PyTorch)",
    "ensemble": "a stacked ensemble (a logistic regression on its member models' log-odds)",
}
_METHOD = {
    "linear": "exact linear SHAP values",
    "points": "the points each feature lost against its best bin (exact)",
    "tree_interventional": "exact TreeSHAP values",
    "tree_path_dependent": "exact TreeSHAP values",
    "permutation": "sampled permutation SHAP values",
    "stacked": "each member model's own SHAP values, weighted as the stack weighs its log-odds",
}


def _test_auc(candidate: dict[str, Any]) -> float | None:
    return candidate.get("test", {}).get("roc_auc")


def selection_rationale(result: EvaluationResult) -> dict[str, str]:
    """Four paragraphs: hypothesis, data size and structure, interpretability, ethics."""
    return {
        "Hypothesis": _hypothesis(result),
        "Data size and structure": _data(result),
        "Interpretability": _interpretability(result),
        "Ethics and fair lending": _ethics(result),
    }


def _hypothesis(result: EvaluationResult) -> str:
    m = result.metrics
    low, high = m["roc_auc_ci"]
    text = (
        f"Default can be predicted from application data alone. On {m['n']} test applicants "
        f"that played no part in training or selection, the model ranks a random defaulter "
        f"above a random good applicant {m['roc_auc']:.1%} of the time (ROC AUC "
        f"{m['roc_auc']:.3f}, 95% interval {low:.3f}–{high:.3f}; Gini {m['gini']:.3f}, KS "
        f"{m['ks']:.3f}); the interval {'excludes' if low > 0.5 else 'includes'} chance (0.5)."
    )
    simplest = next((c for c in result.candidates if c["name"] == "logistic_regression"), None)
    if simplest and result.candidate != "logistic_regression" and _test_auc(simplest):
        gain = m["roc_auc"] - _test_auc(simplest)
        inside = abs(gain) < (high - low) / 2
        text += (
            f" The simplest candidate, logistic regression, reaches test AUC "
            f"{_test_auc(simplest):.3f}: the champion's advantage of {gain:+.3f} is "
            f"{'within' if inside else 'outside'} the sampling uncertainty of the test AUC."
        )
    return text


def _data(result: EvaluationResult) -> str:
    d = result.data
    split = d["split"]
    stds = [c["cv"]["roc_auc"]["std"] for c in result.candidates if "roc_auc" in c.get("cv", {})]
    low, high = result.metrics["roc_auc_ci"]
    text = (
        f"{d['rows']:,} applications with a {d['positive_rate']:.1%} default rate, split "
        f"{split['train']:,} / {split['validation']:,} / {split['test']:,} (train / validation / "
        f"test, stratified); {len(d['numeric'])} numeric and {len(d['categorical'])} "
        f"categorical features."
    )
    if stds:
        spread = max(stds)
        text += (
            f" Five-fold cross-validated AUC varies by up to {spread:.3f} (standard deviation) "
            f"across folds, so candidates closer than about {2 * spread:.3f} cannot be told "
            f"apart on this much data"
        )
        text += (
            f", and the {split['test']:,}-row test set pins the champion's AUC only to a "
            f"{high - low:.3f}-wide interval."
        )
    if d.get("dropped"):
        text += " Dropped before training: " + "; ".join(
            f"{k} ({v})" for k, v in d["dropped"].items()
        )
        text += "."
    return text


def _interpretability(result: EvaluationResult) -> str:
    explanation = result.explanation
    top = explanation.importance[:3]
    drivers = ", ".join(f"{i.feature} ({i.share:.0%})" for i in top)
    text = (
        f"The champion is {_FAMILY.get(result.candidate, result.candidate)}. Each decision is "
        f"explained with {_METHOD.get(explanation.method, explanation.method)} in "
        f"{explanation.output_space.replace('_', '-')} space; the strongest drivers overall are "
        f"{drivers} of the mean absolute contribution."
    )
    behaviour = result.behaviour
    if behaviour.checks:
        parts = [
            f"{c.feature} ({c.change}: {'pass' if c.passed else 'fail'}, "
            f"{c.violation_share:.1%} of rows violate)"
            for c in behaviour.checks
        ]
        text += " Domain expectations checked on the test set: " + "; ".join(parts) + "."
    ranked_by = "points lost" if explanation.method == "points" else "SHAP contribution"
    text += (
        f" Declined applicants receive up to four adverse-action reasons ranked by their "
        f"{ranked_by}, and a counterfactual hint on actionable features."
    )
    return text


def _ethics(result: EvaluationResult) -> str:
    protected = result.data.get("protected") or []
    if not protected or result.fairness is None:
        return (
            "The dataset spec names no protected attributes, so fairness could not be measured; "
            "name them under `protected:` before using the model for decisions."
        )
    text = (
        f"Protected attributes ({', '.join(protected)}) are excluded from the model's features "
        f"and used only to measure outcomes. At the policy's approval threshold "
        f"({result.policy.approve_below:.3f}):"
    )
    for attribute in result.fairness.attributes:
        if attribute.kind != "attribute":
            continue
        di = attribute.disparate_impact_ratio
        if di is None or di.value is None:
            text += (
                f" {attribute.attribute}: not assessable ({attribute.note or 'too few groups'})."
            )
            continue
        text += (
            f" {attribute.attribute} disparate impact ratio {di.value:.2f} "
            f"(95% interval {di.ci_low:.2f}–{di.ci_high:.2f}), {attribute.four_fifths_verdict}"
            f" ({attribute.least_approved_group} vs {attribute.most_approved_group});"
        )
    gate = result.fairness_gate
    if gate is not None:
        text += f" the fairness gate {'passes' if gate.passed else 'fails'}"
        if gate.passed:
            text += "."
        else:
            count = len(gate.failures)
            text += f" on {count} {'criterion' if count == 1 else 'criteria'}."
    for mitigation in result.mitigation:
        text += (
            f" Post-processing ({mitigation.method.replace('_', ' ')}) on {mitigation.attribute} "
            f"would move the ratio from {mitigation.unmitigated.disparate_impact_ratio:.2f} to "
            f"{mitigation.mitigated.disparate_impact_ratio:.2f}, with accuracy going from "
            f"{mitigation.unmitigated.accuracy:.3f} to {mitigation.mitigated.accuracy:.3f}."
        )
    return text


def limitations(result: EvaluationResult) -> list[str]:
    """Known limits, each tied to a measured figure or a property of the data."""
    items = []
    low, high = result.metrics["roc_auc_ci"]
    items.append(
        f"Test AUC is known only to ±{(high - low) / 2:.3f} ({result.metrics['n']} test rows); "
        "monitor realised performance once outcomes arrive."
    )
    items.append(
        "Outcomes are known only for applications in the source data that became loans, as is "
        "usual for a loan book; the model is not corrected for that selection (no reject "
        "inference), so its figures describe applicants like those who were accepted."
    )
    ece = result.metrics["ece"]
    verdict = (
        "are close to observed default rates"
        if ece < 0.03
        else "deviate from observed rates and should be recalibrated before pricing"
    )
    items.append(
        f"Expected calibration error on the test set is {ece:.3f}; probabilities {verdict}."
    )
    if result.fairness is not None:
        small = [
            f"{a.attribute}: {', '.join(a.excluded_groups)}"
            for a in result.fairness.attributes
            if a.kind == "attribute" and a.excluded_groups
        ]
        if small:
            items.append(
                "Groups too small to judge fairness (shown, not judged): " + "; ".join(small) + "."
            )
    if result.fairness_gate is not None and not result.fairness_gate.passed:
        items.append("The fairness gate fails: " + " ".join(result.fairness_gate.failures))
    failed = [c.feature for c in result.behaviour.checks if not c.passed]
    if failed:
        items.append("Behaviour checks fail for: " + ", ".join(failed) + ".")
    items.append(
        f"The decision policy was tuned on {result.data['split']['validation']} validation rows "
        "under assumed economics (loss given default, margin, review cost); revisit it when "
        "they change."
    )
    return items
