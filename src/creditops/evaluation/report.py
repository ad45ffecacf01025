"""The model report: one self-contained HTML page (plots inlined, works offline) and a
Markdown model card, both rendered from the same sections so they never disagree.

Where training included the WoE scorecard, the benchmark a credit validator expects, the
candidate table shows every candidate's test AUC and Gini gain over it; where the version *is*
the scorecard, its points table gets a section of its own."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from creditops.evaluation.rationale import limitations, selection_rationale
from creditops.evaluation.review import Evaluation, EvaluationResult

REPORT_HTML = "report.html"
MODEL_CARD = "model_card.md"


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str | None = None


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    labelled: list[tuple[str, str]] = field(default_factory=list)  # (label, paragraph)


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _money(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _points_range(low: float | None, high: float | None) -> str:
    if high is None:
        return f"≥ {low:.0f}"
    if low is None:
        return f"< {high:.0f}"
    return f"{low:.0f}–{high:.0f}"


def _ci(estimate: Any) -> str:
    if estimate is None or estimate.value is None:
        return "–"
    if estimate.ci_low is None:
        return _num(estimate.value)
    return f"{estimate.value:.3f} [{estimate.ci_low:.3f}, {estimate.ci_high:.3f}]"


def build_sections(result: EvaluationResult) -> list[Section]:
    """The report's content, independent of the output format."""
    m = result.metrics
    d = result.data
    sections = [
        Section(
            "Intended use",
            paragraphs=[
                f"Estimates the probability that an applicant defaults ({d['target']} = "
                f"{d['positive']!s}) from the information on a credit application in the "
                f"`{result.dataset}` dataset, to approve, refer to manual review or decline "
                "applications under the decision policy below, with adverse-action reasons for "
                "every decline. Not for use on populations, products or protected attributes "
                "other than those it was trained and assessed on, and not a substitute for the "
                "lender's credit policy and fair-lending review.",
            ],
        ),
        _data_section(result),
        _candidates_section(result),
        Section(
            "Selection rationale",
            paragraphs=[result.selection or ""],
            labelled=list(selection_rationale(result).items()),
        ),
        _metrics_section(result),
        _calibration_section(result),
        *([_scorecard_section(result)] if result.scorecard is not None else []),
        *([_ensemble_section(result)] if result.ensemble is not None else []),
        _behaviour_section(result),
        _fairness_section(result),
        _errors_section(result),
        _business_section(result),
        _explanations_section(result),
        Section("Limitations", bullets=limitations(result)),
    ]
    gate = result.fairness_gate
    gate_word = "not assessed" if gate is None else ("passes" if gate.passed else "fails")
    headline = (
        f"Test ROC AUC {m['roc_auc']:.3f} [{m['roc_auc_ci'][0]:.3f}, {m['roc_auc_ci'][1]:.3f}], "
        f"Gini {m['gini']:.3f}, KS {m['ks']:.3f}; policy approves "
        f"{_pct(result.policy_outcome.approve_rate)} of test applicants with a "
        f"{_pct(result.policy_outcome.bad_rate_approved)} bad rate; fairness gate "
        f"{gate_word}."
    )
    sections.insert(0, Section("Summary", paragraphs=[headline]))
    return sections


def _data_section(result: EvaluationResult) -> Section:
    d = result.data
    split = d["split"]
    return Section(
        "Data and split",
        paragraphs=[
            f"{d['rows']:,} rows, {_pct(d['positive_rate'])} defaults. Stratified, seeded split: "
            f"{split['train']:,} train / {split['validation']:,} validation / {split['test']:,} "
            "test rows. Choices (tuning, calibration, champion, policy) used train and "
            "validation only; every figure below is on the test split unless it says otherwise.",
            f"Numeric features: {', '.join(d['numeric']) or '–'}. Categorical features: "
            f"{', '.join(d['categorical']) or '–'}. Protected attributes (not features): "
            f"{', '.join(d['protected']) or 'none named'}.",
        ]
        + (
            ["Dropped: " + "; ".join(f"{k} ({v})" for k, v in d["dropped"].items()) + "."]
            if d["dropped"]
            else []
        ),
    )


BENCHMARK = "scorecard"  # the candidate every other one is measured against, when trained


def scorecard_gains(candidates: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Each candidate's (test AUC gain, test Gini gain) over the WoE scorecard candidate; empty
    when no scorecard with a test AUC was trained. Gini = 2·AUC − 1, so its gain is twice the
    AUC's."""
    benchmark = next((c for c in candidates if c["name"] == BENCHMARK), None)
    base = None if benchmark is None else benchmark.get("test", {}).get("roc_auc")
    if base is None:
        return {}
    gains = {}
    for c in candidates:
        auc = c.get("test", {}).get("roc_auc")
        if auc is not None:
            gains[c["name"]] = (auc - base, 2.0 * (auc - base))
    return gains


def _candidates_section(result: EvaluationResult) -> Section:
    gains = scorecard_gains(result.candidates)
    rows = []
    for c in result.candidates:
        cv = c.get("cv", {}).get("roc_auc", {})
        chosen = c.get("selection") or {}
        marker = " (champion)" if c["name"] == result.candidate else ""
        gap = chosen.get("gap")
        row = [
            c["name"] + marker,
            f"{_num(cv.get('mean'))} ± {_num(cv.get('std'))}",
            "–" if gap is None else f"{gap:.4f} ± {_num(chosen.get('gap_se'))}",
            "–" if gap is None else ("yes" if chosen.get("within_rule") else "no"),
            _num(c["validation"].get("roc_auc")),
            _num(c["test"].get("roc_auc")),
            _num(c["test"].get("ks")),
            _num(c["test"].get("brier")),
            str(c.get("calibration")),
        ]
        if gains:
            gain = gains.get(c["name"])
            benchmark = c["name"] == BENCHMARK
            row += (
                ["benchmark", "benchmark"]
                if benchmark
                else [f"{gain[0]:+.3f}", f"{gain[1]:+.3f}"]
                if gain
                else ["–", "–"]
            )
        rows.append(row)
    columns = [
        "model",
        "CV AUC ± std",
        "CV gap to best ± SE",
        "within rule",
        "validation AUC",
        "test AUC",
        "test KS",
        "test Brier",
        "calibration",
    ]
    paragraphs = []
    if gains:
        columns += ["test AUC gain over scorecard", "test Gini gain over scorecard"]
        champion = gains.get(result.candidate)
        paragraphs.append(
            "The WoE logistic scorecard is the benchmark a credit validator expects beside any "
            "machine-learning model: the last two columns show how much each candidate ranks "
            "applicants better (or worse) than it on the test split."
            + (
                f" The champion's gain: {champion[0]:+.3f} AUC, {champion[1]:+.3f} Gini."
                if champion is not None and result.candidate != BENCHMARK
                else ""
            )
        )
    costs = [
        f"{c['name']} {c['monotone_cost']:+.4f}"
        for c in result.candidates
        if c.get("monotone_cost") is not None
    ]
    if costs:
        paragraphs.append(
            "The spec's monotone expectations are constraints for the boosted trees, so their "
            "behaviour checks hold by construction. Cross-validated AUC the constraints cost "
            "(the same parameters fitted free minus constrained; negative: the constraints "
            f"helped): {', '.join(costs)}."
        )
    return Section(
        "Candidates compared",
        paragraphs=paragraphs,
        tables=[
            Table(
                columns,
                rows,
                "Sorted by cross-validated AUC, the selection criterion: the gap is the mean "
                "per-fold shortfall against the best candidate, with its standard error from "
                "the paired folds; the simplest candidate within the rule is the champion.",
            )
        ],
    )


def _ensemble_section(result: EvaluationResult) -> Section:
    stack = result.ensemble
    assert stack is not None
    by_name = {c["name"]: c for c in result.candidates}
    rows = []
    for member in stack["members"]:
        figures = by_name.get(member["name"], {})
        rows.append(
            [
                member["name"],
                f"{member['weight']:.3f}",
                _num(figures.get("cv", {}).get("roc_auc", {}).get("mean")),
                _num(figures.get("test", {}).get("roc_auc")),
                str(figures.get("calibration", "–")),
            ]
        )
    paragraphs = [
        "The champion stacks the candidates with the best cross-validated AUC: its log-odds is "
        f"{stack['intercept']:+.3f} plus each member's log-odds (its probability of default, "
        "before the member's own calibration, as log-odds) times the member's weight. The "
        "weights are a logistic regression fitted on predictions each member made for training "
        "rows it had not seen, so they are also the ensemble's calibration. Each decision's "
        "explanation is its members' explanations weighted the same way.",
    ]
    if stack["dropped"]:
        paragraphs.append(
            "Left out because their weight came out negative (they only corrected the others): "
            + ", ".join(stack["dropped"])
            + "."
        )
    return Section(
        "Stacked ensemble",
        paragraphs=paragraphs,
        tables=[
            Table(
                ["member", "weight", "member CV AUC", "member test AUC", "member calibration"],
                rows,
                "The member calibration is the one the member has as a candidate on its own; "
                "inside the ensemble the stacker calibrates.",
            )
        ],
    )


def _scorecard_section(result: EvaluationResult) -> Section:
    table = result.scorecard
    assert table is not None
    scale = table.scale
    paragraphs = [
        f"Points on the version's scale ({scale.base_points:g} points at {scale.base_odds:g}:1 "
        f"good:bad odds, {scale.pdo:g} points to double the odds). An applicant's score is the "
        f"sum of one row per feature, the row of the bin holding their value; higher is safer. "
        f"The intercept and the scale's offset are spread evenly over the "
        f"{len(table.features)} scored features ({table.base_points_per_feature:.2f} points "
        "inside every row), so there is no separate base row. Missing values score their own "
        "row (for categories the spec orders, so does a category outside the order); a "
        'category never seen in training scores its "Unseen category" row.',
        "Bins are monotone in the default rate (in the spec's direction where it states one), "
        "and features with an information value below the scorecard's minimum were left out.",
    ]
    if table.calibration == "sigmoid":
        paragraphs.append(
            "The version's sigmoid calibration is folded into the points, so the sum equals the "
            "score the decision service gives."
        )
    elif not table.reproduces_score:
        paragraphs.append(
            f"The version is {table.calibration}-calibrated, which is not additive: these are "
            "the scorecard's own points; the served score is the calibrated probability's."
        )
    rows = [
        [
            r.feature,
            r.bin,
            str(r.count),
            _pct(r.event_rate),
            f"{r.woe:+.3f}",
            _num(r.iv, 4),
            f"{r.points:.1f}",
        ]
        for r in table.rows
    ]
    return Section(
        "Scorecard points",
        paragraphs=paragraphs,
        tables=[
            Table(
                ["feature", "bin", "rows", "default rate", "WoE", "IV", "points"],
                rows,
                "Training rows per bin; points to one decimal (exact in evaluation.json).",
            )
        ],
    )


def _metrics_section(result: EvaluationResult) -> Section:
    m = result.metrics
    cm = m["confusion_matrix"]
    rows = [
        ["ROC AUC", f"{m['roc_auc']:.3f} [{m['roc_auc_ci'][0]:.3f}, {m['roc_auc_ci'][1]:.3f}]"],
        ["Gini", f"{m['gini']:.3f} [{m['gini_ci'][0]:.3f}, {m['gini_ci'][1]:.3f}]"],
        ["KS", _num(m["ks"])],
        ["PR AUC", _num(m["pr_auc"])],
        ["Accuracy", _num(m["accuracy"])],
        ["Precision (declined who default)", _num(m["precision"])],
        ["Recall (defaulters declined)", _num(m["recall"])],
        ["F1", _num(m["f1"])],
        ["Specificity (goods approved)", _num(m["specificity"])],
        ["Brier score", _num(m["brier"], 4)],
        ["RMSE of probabilities", _num(m["rmse"], 4)],
        ["Log loss", _num(m["log_loss"], 4)],
    ]
    lift = [
        [
            str(r["decile"]),
            str(r["count"]),
            _pct(r["bad_rate"]),
            _num(r["lift"], 2),
            _pct(r["cumulative_gain"]),
        ]
        for r in m["lift"]
    ]
    return Section(
        "Metrics",
        paragraphs=[
            f"Bracketed: 95% bootstrap intervals (stratified, 1,000 replicates). Threshold "
            f"metrics decline at probability ≥ {m['threshold']:.3f}, the policy's approval "
            f"cut-off. Confusion matrix: {cm['tn']} goods approved, {cm['fp']} goods declined, "
            f"{cm['fn']} defaulters approved, {cm['tp']} defaulters declined."
        ],
        tables=[
            Table(["metric", "test"], rows),
            Table(
                ["risk decile", "rows", "bad rate", "lift", "cumulative gain"],
                lift,
                "Deciles of predicted risk, riskiest first.",
            ),
        ],
        figures=["roc.png", "pr.png", "confusion_matrix.png"],
    )


def _calibration_section(result: EvaluationResult) -> Section:
    m = result.metrics
    rows = [
        [
            str(r["count"]),
            f"{r['min_proba']:.3f}–{r['max_proba']:.3f}",
            _pct(r["mean_predicted"]),
            _pct(r["observed_rate"]),
        ]
        for r in m["calibration"]
    ]
    calibrations = {c["name"]: c.get("calibration") for c in result.candidates}
    applied = calibrations.get(result.candidate, "unknown")
    how = (
        "the stacker, a logistic regression fitted on out-of-fold predictions"
        if applied == "stacked"
        else f"{applied} (chosen on validation log loss)"
    )
    return Section(
        "Calibration",
        paragraphs=[
            f"Expected calibration error {m['ece']:.3f} (row-weighted gap between predicted and "
            f"observed default rates over ten equal-count bins). Calibration applied in "
            f"training: {how}."
        ],
        tables=[Table(["rows", "predicted range", "mean predicted", "observed"], rows)],
        figures=["calibration.png"],
    )


def _behaviour_section(result: EvaluationResult) -> Section:
    rows = [
        [
            c.feature,
            c.expectation,
            c.change,
            _pct(c.violation_share),
            f"{c.mean_risk_change:+.4f}",
            "pass" if c.passed else "fail",
        ]
        for c in result.behaviour.checks
    ]
    return Section(
        "Behaviour checks",
        paragraphs=[
            "Each test row is scored as it is and with one feature moved in its risky direction; "
            f"a row violates the expectation when its risk falls by more than "
            f"{result.behaviour.tolerance}. A check passes when at most "
            f"{_pct(result.behaviour.max_violation_share)} of rows violate it."
        ]
        if rows
        else ["The dataset spec states no monotone expectations (`monotone:`)."],
        tables=[
            Table(
                [
                    "feature",
                    "expectation",
                    "change",
                    "rows violating",
                    "mean risk change",
                    "verdict",
                ],
                rows,
            )
        ]
        if rows
        else [],
    )


def _fairness_section(result: EvaluationResult) -> Section:
    report = result.fairness
    if report is None:
        return Section("Fairness", paragraphs=["No protected attributes in the dataset spec."])
    section = Section(
        "Fairness",
        paragraphs=[
            f"Favourable outcome: approval (probability of default below "
            f"{report.threshold:.3f}). Groups with fewer than {report.config.min_group_size} "
            "rows (or too few defaulters or goods) are shown but not judged. Intervals: 95% "
            "bootstrap."
        ],
        figures=["fairness_approval.png"],
    )
    summary = []
    for attribute in report.attributes:
        summary.append(
            [
                attribute.attribute,
                _ci(attribute.disparate_impact_ratio),
                attribute.four_fifths_verdict,
                _ci(attribute.demographic_parity_difference),
                _ci(attribute.equal_opportunity_difference),
                _ci(attribute.equalized_odds_difference),
            ]
        )
        groups = [
            [
                g.group,
                str(g.size),
                _pct(g.base_rate),
                _pct(g.approval_rate),
                _num(g.tpr),
                _num(g.fpr),
                _num(g.precision),
                _num(g.auc),
                g.status,
            ]
            for g in attribute.groups
        ]
        section.tables.append(
            Table(
                [
                    "group",
                    "size",
                    "default rate",
                    "approval rate",
                    "TPR",
                    "FPR",
                    "precision",
                    "AUC",
                    "status",
                ],
                groups,
                f"{attribute.attribute}",
            )
        )
    section.tables.insert(
        0,
        Table(
            [
                "attribute",
                "disparate impact ratio",
                "four-fifths rule",
                "parity difference",
                "equal opportunity diff.",
                "equalized odds diff.",
            ],
            summary,
            "Summary",
        ),
    )
    gate = result.fairness_gate
    if gate is not None:
        section.bullets.append(f"Fairness gate: {'PASS' if gate.passed else 'FAIL'}.")
        section.bullets.extend(gate.failures)
    for mitigation in result.mitigation:
        section.bullets.append(
            f"Mitigation ({mitigation.method.replace('_', ' ')}, {mitigation.attribute}): "
            f"disparate impact {mitigation.unmitigated.disparate_impact_ratio:.3f} → "
            f"{mitigation.mitigated.disparate_impact_ratio:.3f}; accuracy "
            f"{mitigation.unmitigated.accuracy:.3f} → {mitigation.mitigated.accuracy:.3f}."
        )
    return section


def _errors_section(result: EvaluationResult) -> Section:
    e = result.errors
    section = Section(
        "Error analysis",
        paragraphs=[
            f"At the approval cut-off {e.threshold:.3f}: {e.false_positives.count} good "
            f"applicants declined (false positives, cost {_money(e.false_positives.total_cost)}) "
            f"and {e.false_negatives.count} defaulters approved (false negatives, cost "
            f"{_money(e.false_negatives.total_cost)}); costs on the {e.cost_basis} basis."
        ],
        figures=["error_segments.png"],
    )
    section.tables.append(
        Table(
            ["feature", "measure", "difference from correctly classified", "driven by"],
            [
                [r.feature, r.measure, _num(r.score), str(r.driven_by or "–")]
                for r in e.feature_ranking[:8]
            ],
            "How the errors differ from the correctly classified applicants.",
        )
    )
    section.tables.append(
        Table(
            ["feature", "segment", "rows", "error rate", "FP rate", "FN rate"],
            [
                [
                    s.feature,
                    s.label,
                    str(s.size),
                    _pct(s.error_rate),
                    _pct(s.fp_rate),
                    _pct(s.fn_rate),
                ]
                for s in e.worst_segments[:8]
            ],
            f"Worst segments (at least {e.min_segment_size} rows).",
        )
    )
    wrong = []
    for case in [*e.most_confident_false_negatives[:5], *e.most_confident_false_positives[:5]]:
        reasons = (case.explanation or {}).get("reasons") or []
        top = (case.explanation or {}).get("top_contributions") or []
        drivers = ", ".join(f"{c['feature']} {c['contribution']:+.2f}" for c in top[:3])
        wrong.append(
            [
                case.kind.replace("_", " "),
                str(case.id or case.index),
                _num(case.proba),
                drivers or "–",
                "; ".join(reasons) or "–",
            ]
        )
    section.tables.append(
        Table(
            ["error", "applicant", "probability", "largest contributions", "reasons"],
            wrong,
            "Most confidently wrong.",
        )
    )
    return section


def _business_section(result: EvaluationResult) -> Section:
    b, policy, outcome = result.business, result.policy, result.policy_outcome
    econ = b.economics
    amount = (
        f"the `{econ.amount_column}` column"
        if econ.amount_column
        else f"an average amount of {econ.average_amount:,.0f}"
    )
    section = Section(
        "Business impact and decision policy",
        paragraphs=[
            f"Economics: loan amounts from {amount}, loss given default "
            f"{econ.loss_given_default:.0%}, interest margin {econ.interest_margin:.0%}, manual "
            f"review {econ.review_cost:,.0f} per application (break-even probability of default "
            f"{b.break_even_pd:.3f}). Chosen on the validation split ({b.n} rows).",
            f"Profit-maximizing threshold: approve below {b.optimal.threshold:.3f}, approving "
            f"{_pct(b.optimal.approval_rate)} with a {_pct(b.optimal.bad_rate)} bad rate and "
            f"a realised profit of {_money(b.optimal.realised_profit)} "
            f"({b.optimal.profit_per_application:,.1f} per application).",
            f"Policy stored with this version: approve below {policy.approve_below:.3f}, refer "
            f"to manual review up to {policy.decline_at_or_above:.3f}, decline at or above. On "
            f"the test split it approves {_pct(outcome.approve_rate)} (bad rate "
            f"{_pct(outcome.bad_rate_approved)}), refers {_pct(outcome.refer_rate)} (bad rate "
            f"{_pct(outcome.bad_rate_referred)}) and declines {_pct(outcome.decline_rate)} (bad "
            f"rate {_pct(outcome.bad_rate_declined)}); approved loans earn "
            f"{_money(outcome.realised_profit_approved)}, reviews cost "
            f"{_money(outcome.review_cost)}.",
            f"Score scale: {policy.scale.base_points:g} points at {policy.scale.base_odds:g}:1 "
            f"good:bad odds, {policy.scale.pdo:g} points to double the odds.",
        ],
        figures=["profit_threshold.png", "profit_approval.png", "risk_grades.png"],
    )
    section.tables.append(
        Table(
            [
                "approval rate",
                "threshold",
                "bad rate among approved",
                "realised profit",
                "expected profit",
            ],
            [
                [
                    _pct(r.approval_rate),
                    _num(r.threshold),
                    _pct(r.bad_rate),
                    _money(r.realised_profit),
                    _money(r.expected_profit),
                ]
                for r in b.approval_table
            ],
            "Approval-rate table (validation).",
        )
    )
    section.tables.append(
        Table(
            ["grade", "points", "rows", "share", "bad rate", "mean PD"],
            [
                [
                    g.grade,
                    _points_range(g.min_points, g.max_points),
                    str(g.count),
                    _pct(g.share),
                    _pct(g.bad_rate),
                    _pct(g.mean_pd),
                ]
                for g in b.risk_grades.grades
            ],
            "Risk grades (validation).",
        )
    )
    return section


def _explanations_section(result: EvaluationResult) -> Section:
    g = result.explanation
    if g.method == "points":
        factor = result.policy.scale.pdo / math.log(2.0)
        what = "points lost"
        intro = (
            f"Points lost, the scorecard's own explanation, over {g.n_rows} test applicants: a "
            "feature's contribution is the log-odds of default its bin adds beyond the "
            f"feature's best bin (× {factor:.2f} = the points lost there); adverse-action "
            "reasons are the features that lost the most."
        )
    else:
        what = "SHAP"
        intro = (
            f"SHAP ({g.method.replace('_', ' ')}, {g.output_space.replace('_', '-')} space) "
            f"over {g.n_rows} test applicants; contributions of one-hot and missing-value "
            "columns are summed back to the original feature."
        )
    section = Section(
        "Explanations",
        paragraphs=[intro],
        tables=[
            Table(
                ["feature", f"mean |{what}|", "share", f"mean {what}"],
                [
                    [
                        i.feature,
                        _num(i.mean_abs_contribution, 4),
                        _pct(i.share),
                        f"{i.mean_contribution:+.4f}",
                    ]
                    for i in g.importance
                ],
            )
        ],
        figures=["shap_importance.png", "shap_beeswarm.png"],
    )
    example = result.example
    if example is None:
        return section
    section.paragraphs.append(
        f"Example: applicant {example.id or example.row}, probability of default "
        f"{example.proba:.3f} → {example.decision}. Adverse-action reasons: "
        + "; ".join(f"{r.code} {r.text}" for r in example.reasons)
        + "."
    )
    contributions = sorted(example.shap.contributions, key=lambda c: -abs(c.contribution))
    section.tables.append(
        Table(
            ["feature", "value", f"{what} contribution"],
            [[c.feature, str(c.value), f"{c.contribution:+.4f}"] for c in contributions],
            f"{what.capitalize()} for the example (base {example.shap.base_value:+.3f}, output "
            f"{example.shap.raw_output:+.3f}).",
        )
    )
    section.tables.append(
        Table(
            ["condition", "LIME weight"],
            [[w.condition, f"{w.weight:+.4f}"] for w in example.lime.weights],
            f"LIME for the example (local fit R² {example.lime.score:.2f}).",
        )
    )
    cf = example.counterfactual
    if cf.found:
        changes = ", ".join(f"{c.feature} {c.original:g} → {c.proposed:g}" for c in cf.changes)
        section.paragraphs.append(
            f"Counterfactual hint: {changes} would lower the probability to {cf.new_proba:.3f}, "
            f"below the decline cut-off {cf.threshold:.3f}. Actionable features: "
            + ", ".join(f"{k} ({v})" for k, v in cf.actionable.items())
            + "."
        )
    else:
        section.paragraphs.append(f"Counterfactual hint: none found ({cf.reason}).")
    return section


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("creditops.evaluation", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(evaluation: Evaluation) -> str:
    result = evaluation.result
    images = {
        name: base64.b64encode(_png(fig)).decode("ascii")
        for name, fig in evaluation.figures.items()
    }
    return (
        _environment()
        .get_template("report.html.j2")
        .render(result=result, sections=build_sections(result), images=images)
    )


def render_markdown(evaluation: Evaluation, plots_dir: str = "plots") -> str:
    result = evaluation.result
    return (
        _environment()
        .get_template("model_card.md.j2")
        .render(
            result=result,
            sections=build_sections(result),
            plots_dir=plots_dir,
            figures=set(evaluation.figures),
        )
    )


def write_report(evaluation: Evaluation, directory: Path) -> dict[str, Path]:
    """Write report.html, model_card.md, evaluation.json and the plots into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    plots = directory / "plots"
    plots.mkdir(exist_ok=True)
    for name, figure in evaluation.figures.items():
        (plots / name).write_bytes(_png(figure))
    html = directory / REPORT_HTML
    html.write_text(render_html(evaluation), encoding="utf-8")
    card = directory / MODEL_CARD
    card.write_text(render_markdown(evaluation), encoding="utf-8")
    data = directory / "evaluation.json"
    data.write_text(evaluation.result.model_dump_json(indent=2), encoding="utf-8")
    return {"html": html, "model_card": card, "json": data, "plots": plots}
