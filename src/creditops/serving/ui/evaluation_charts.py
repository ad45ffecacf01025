"""Charts of a stored evaluation (one version, or several overlaid to compare them), as Plotly
JSON. Everything comes from the :class:`EvaluationResult` (or a version of a comparison, which
carries its metrics in the same shape), so a chart never recomputes what was measured."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Protocol

from creditops.evaluation.policy import DecisionPolicy
from creditops.evaluation.review import EvaluationResult
from creditops.serving.ui.charts import APPROVE, DECLINE, GREY, LINE, REFER, Figure, layout

# One colour per compared version (Okabe–Ito blue, vermilion, bluish green, purple).
VERSION_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7")


class Measured(Protocol):
    """What the curve charts read: a review's result, or one version of a comparison."""

    @property
    def model_version(self) -> str: ...
    @property
    def candidate(self) -> str: ...
    @property
    def metrics(self) -> dict[str, Any]: ...
    @property
    def policy(self) -> DecisionPolicy: ...


def _name(result: Measured) -> str:
    return f"v{result.model_version} {result.candidate}"


def _colour(index: int) -> str:
    return VERSION_COLOURS[index % len(VERSION_COLOURS)]


def roc(results: Sequence[Measured]) -> Figure:
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": f"{_name(r)} (AUC {r.metrics['roc_auc']:.3f})",
            "x": r.metrics["roc_curve"]["fpr"],
            "y": r.metrics["roc_curve"]["tpr"],
            "line": {"color": _colour(i)},
        }
        for i, r in enumerate(results)
    ]
    traces.append(_diagonal("chance"))
    return {
        "data": traces,
        "layout": layout(
            xaxis={"title": {"text": "false positive rate (goods flagged)"}, "range": [0, 1]},
            yaxis={"title": {"text": "true positive rate (bads caught)"}, "range": [0, 1]},
        ),
    }


def _diagonal(name: str) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "x": [0, 1],
        "y": [0, 1],
        "line": {"color": GREY, "dash": "dot"},
        "hoverinfo": "skip",
    }


def precision_recall(results: Sequence[Measured]) -> Figure:
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{_name(r)} (AP {r.metrics['pr_auc']:.3f})",
                "x": r.metrics["pr_curve"]["recall"],
                "y": r.metrics["pr_curve"]["precision"],
                "line": {"color": _colour(i)},
            }
            for i, r in enumerate(results)
        ],
        "layout": layout(
            xaxis={"title": {"text": "recall (share of bads caught)"}, "range": [0, 1]},
            yaxis={"title": {"text": "precision"}, "range": [0, 1]},
        ),
    }


def calibration(results: Sequence[Measured]) -> Figure:
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": _name(r),
            "x": [b["mean_predicted"] for b in r.metrics["calibration"]],
            "y": [b["observed_rate"] for b in r.metrics["calibration"]],
            "text": [f"{b['count']:,} applicants" for b in r.metrics["calibration"]],
            "line": {"color": _colour(i)},
        }
        for i, r in enumerate(results)
    ]
    traces.append(_diagonal("perfect calibration"))
    return {
        "data": traces,
        "layout": layout(
            xaxis={"title": {"text": "predicted default rate"}, "tickformat": ".0%"},
            yaxis={"title": {"text": "observed default rate"}, "tickformat": ".0%"},
        ),
    }


def gains(results: Sequence[Measured]) -> Figure:
    traces: list[dict[str, Any]] = []
    for i, r in enumerate(results):
        lift = r.metrics["lift"]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": _name(r),
                "x": [0] + [row["decile"] * 10 for row in lift],
                "y": [0] + [row["cumulative_gain"] for row in lift],
                "line": {"color": _colour(i)},
            }
        )
    traces.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "random",
            "x": [0, 100],
            "y": [0, 1],
            "line": {"color": GREY, "dash": "dot"},
        }
    )
    return {
        "data": traces,
        "layout": layout(
            xaxis={"title": {"text": "riskiest applicants reviewed (%)"}},
            yaxis={"title": {"text": "share of all bads found"}, "tickformat": ".0%"},
        ),
    }


def lift(result: EvaluationResult) -> Figure:
    rows = result.metrics["lift"]
    return {
        "data": [
            {
                "type": "bar",
                "name": "lift",
                "x": [f"D{row['decile']}" for row in rows],
                "y": [row["lift"] for row in rows],
                "marker": {"color": LINE},
                "hovertemplate": "%{x}: lift %{y:.2f}<extra></extra>",
            }
        ],
        "layout": layout(
            showlegend=False,
            xaxis={"title": {"text": "decile of predicted risk (D1: riskiest)"}},
            yaxis={"title": {"text": "bad rate ÷ average bad rate"}},
        ),
    }


def score_distribution(result: Measured) -> Figure:
    histogram = result.metrics["score_histogram"]
    edges = histogram["edges"]
    centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    cut = result.policy
    return {
        "data": [
            {
                "type": "bar",
                "name": "goods (repaid)",
                "x": centres,
                "y": histogram["goods"],
                "marker": {"color": APPROVE},
                "opacity": 0.75,
            },
            {
                "type": "bar",
                "name": "bads (defaulted)",
                "x": centres,
                "y": histogram["bads"],
                "marker": {"color": DECLINE},
                "opacity": 0.75,
            },
        ],
        "layout": layout(
            barmode="overlay",
            bargap=0.05,
            xaxis={"title": {"text": "probability of default"}, "tickformat": ".0%"},
            yaxis={"title": {"text": "test applicants"}},
            shapes=[
                _cutoff(cut.approve_below, APPROVE),
                _cutoff(cut.decline_at_or_above, DECLINE),
            ],
        ),
    }


def _cutoff(x: float, colour: str) -> dict[str, Any]:
    return {
        "type": "line",
        "x0": x,
        "x1": x,
        "yref": "paper",
        "y0": 0,
        "y1": 1,
        "line": {"color": colour, "dash": "dash", "width": 2},
    }


def importance(result: EvaluationResult, top: int = 15) -> Figure:
    rows = result.explanation.importance[:top][::-1]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "x": [row.mean_abs_contribution for row in rows],
                "y": [row.feature for row in rows],
                "marker": {"color": LINE},
                "hovertemplate": "%{y}: %{x:.3f}<extra></extra>",
            }
        ],
        "layout": layout(
            showlegend=False,
            height=max(260, 26 * len(rows) + 80),
            margin={"l": 140, "r": 24, "t": 16, "b": 48},
            xaxis={"title": {"text": f"mean |SHAP| ({result.explanation.output_space})"}},
        ),
    }


def profit_curve(result: EvaluationResult) -> Figure:
    points = result.business.profit_curve.points
    policy = result.policy
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "realised profit",
                "x": [p.threshold for p in points],
                "y": [p.realised_profit for p in points],
                "line": {"color": LINE},
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "expected profit",
                "x": [p.threshold for p in points],
                "y": [p.expected_profit for p in points],
                "line": {"color": REFER, "dash": "dash"},
            },
        ],
        "layout": layout(
            xaxis={
                "title": {"text": "approve below this probability of default"},
                "tickformat": ".0%",
            },
            yaxis={"title": {"text": "profit on the test applicants"}},
            shapes=[_cutoff(policy.approve_below, APPROVE)],
        ),
    }


def approval_by_group(result: EvaluationResult) -> Figure | None:
    fairness = result.fairness
    if fairness is None:
        return None
    traces = []
    for i, attribute in enumerate(a for a in fairness.attributes if a.kind == "attribute"):
        traces.append(
            {
                "type": "bar",
                "name": attribute.attribute,
                "x": [f"{attribute.attribute}: {g.group}" for g in attribute.groups],
                "y": [g.approval_rate for g in attribute.groups],
                "marker": {"color": _colour(i)},
                "hovertemplate": "%{x}: approved %{y:.1%}<extra></extra>",
            }
        )
    return {
        "data": traces,
        "layout": layout(yaxis={"title": {"text": "approval rate"}, "tickformat": ".0%"}),
    }
