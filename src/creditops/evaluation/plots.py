"""Plots as matplotlib figures: diagnostics (ROC, precision–recall, calibration, confusion
matrix), the business report's (profit by threshold and approval rate, risk grades) and the
explanations' (SHAP importance, beeswarm).

Uses the non-interactive Agg canvas directly so plotting works on servers with no display and
never changes the global pyplot backend.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

from creditops.data.spec import ResolvedSpec
from creditops.evaluation.business import (
    BusinessReport,
    OptimalThreshold,
    ProfitCurve,
    RiskGrades,
)


def _figure(size: tuple[float, float] = (5, 4)) -> tuple[Figure, object]:
    figure = Figure(figsize=size, dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def roc_figure(y_true: np.ndarray, proba: np.ndarray, title: str) -> Figure:
    fpr, tpr, _ = roc_curve(y_true, proba)
    gap = int(np.argmax(tpr - fpr))
    figure, ax = _figure()
    ax.plot(fpr, tpr, label="ROC")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.vlines(
        fpr[gap], fpr[gap], tpr[gap], color="tab:red", label=f"KS = {tpr[gap] - fpr[gap]:.3f}"
    )
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=f"ROC: {title}")
    ax.legend(loc="lower right")
    return figure


def pr_figure(y_true: np.ndarray, proba: np.ndarray, title: str) -> Figure:
    precision, recall, _ = precision_recall_curve(y_true, proba)
    figure, ax = _figure()
    ax.plot(recall, precision)
    ax.axhline(float(np.mean(y_true)), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="Recall", ylabel="Precision", title=f"Precision–recall: {title}")
    ax.legend(loc="upper right")
    return figure


def calibration_figure(y_true: np.ndarray, proba: np.ndarray, title: str) -> Figure:
    observed, predicted = calibration_curve(y_true, proba, n_bins=10, strategy="quantile")
    figure, ax = _figure()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    ax.plot(predicted, observed, marker="o", label="model")
    ax.set(xlabel="Mean predicted default probability", ylabel="Observed default rate")
    ax.set_title(f"Calibration: {title}")
    ax.legend(loc="upper left")
    return figure


def confusion_figure(y_true: np.ndarray, proba: np.ndarray, threshold: float, title: str) -> Figure:
    matrix = confusion_matrix(y_true, (proba >= threshold).astype(int), labels=[0, 1])
    figure, ax = _figure()
    ax.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=color)
    ax.set_xticks([0, 1], labels=["good", "default"])
    ax.set_yticks([0, 1], labels=["good", "default"])
    ax.set(xlabel="Predicted", ylabel="Actual", title=f"Confusion at {threshold:.2f}: {title}")
    return figure


def diagnostic_figures(
    y_true: np.ndarray, proba: np.ndarray, *, threshold: float, title: str
) -> dict[str, Figure]:
    """All four plots, keyed by the file name they are logged under."""
    return {
        "roc.png": roc_figure(y_true, proba, title),
        "pr.png": pr_figure(y_true, proba, title),
        "calibration.png": calibration_figure(y_true, proba, title),
        "confusion_matrix.png": confusion_figure(y_true, proba, threshold, title),
    }


def profit_threshold_figure(
    curve: ProfitCurve, optimal: OptimalThreshold | None = None, title: str = ""
) -> Figure:
    """Realised and expected profit by threshold, with the optimum marked."""
    frame = curve.to_frame()
    figure, ax = _figure(size=(6, 4))
    ax.plot(frame["threshold"], frame["realised_profit"], label="realised profit")
    ax.plot(frame["threshold"], frame["expected_profit"], linestyle="--", label="expected profit")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    if optimal is not None:
        ax.axvline(optimal.threshold, color="tab:red", linestyle=":")
        ax.plot(
            [optimal.threshold],
            [
                optimal.realised_profit
                if optimal.objective == "realised"
                else optimal.expected_profit
            ],
            marker="o",
            color="tab:red",
            label=f"optimum t = {optimal.threshold:.3f} ({optimal.approval_rate:.0%} approved)",
        )
    ax.set(xlabel="Threshold (approve when PD < t)", ylabel="Profit", xlim=(0, 1))
    ax.set_title(f"Profit by threshold{': ' + title if title else ''}")
    ax.legend(loc="best")
    return figure


def profit_approval_figure(
    curve: ProfitCurve, optimal: OptimalThreshold | None = None, title: str = ""
) -> Figure:
    """Profit (left axis) and bad rate among approved (right axis) by approval rate."""
    frame = curve.to_frame().sort_values("approval_rate")
    figure, ax = _figure(size=(6, 4))
    ax.plot(frame["approval_rate"], frame["realised_profit"], label="realised profit")
    ax.plot(frame["approval_rate"], frame["expected_profit"], linestyle="--", label="expected")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    if optimal is not None:
        ax.axvline(optimal.approval_rate, color="tab:red", linestyle=":", label="optimum")
    ax.set(xlabel="Approval rate", ylabel="Profit", xlim=(0, 1))
    twin = ax.twinx()
    bad = frame["bad_rate"].astype(float)
    twin.plot(frame["approval_rate"], bad, color="tab:green", label="bad rate (approved)")
    twin.set_ylabel("Bad rate among approved")
    handles = ax.get_legend_handles_labels()
    twin_handles = twin.get_legend_handles_labels()
    ax.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], loc="lower left")
    ax.set_title(f"Profit and bad rate by approval rate{': ' + title if title else ''}")
    return figure


def risk_grade_figure(grades: RiskGrades, title: str = "") -> Figure:
    """Share of applications (bars) and observed bad rate (line) by grade."""
    figure, ax = _figure(size=(6, 4))
    names = [row.grade for row in grades.grades]
    ax.bar(names, [row.share for row in grades.grades], color="tab:blue", alpha=0.6)
    ax.set(xlabel="Risk grade (A best)", ylabel="Share of applications")
    twin = ax.twinx()
    rates = [np.nan if row.bad_rate is None else row.bad_rate for row in grades.grades]
    twin.plot(names, rates, marker="o", color="tab:red")
    twin.set_ylabel("Observed bad rate")
    ax.set_title(f"Risk grades{': ' + title if title else ''}")
    return figure


def business_figures(report: BusinessReport, title: str = "") -> dict[str, Figure]:
    """The report's figures, keyed by the file name they are logged under."""
    return {
        "profit_threshold.png": profit_threshold_figure(report.profit_curve, report.optimal, title),
        "profit_approval.png": profit_approval_figure(report.profit_curve, report.optimal, title),
        "risk_grades.png": risk_grade_figure(report.risk_grades, title),
    }


def importance_figure(names: list[str], values: np.ndarray, unit: str) -> Figure:
    """Mean |SHAP value| per feature, as horizontal bars (largest first in ``names``)."""
    figure = Figure(figsize=(6, 0.35 * len(names) + 1.5), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    positions = np.arange(len(names))[::-1]
    ax.barh(positions, values, color="tab:blue")
    ax.set_yticks(positions, labels=names)
    ax.set(xlabel=f"Mean |SHAP value| ({unit})", title="Feature importance")
    return figure


def beeswarm_figure(
    X: pd.DataFrame,
    values: np.ndarray,
    shown: list[int],
    features: list[str],
    spec: ResolvedSpec,
    unit: str,
) -> Figure:
    """One swarm per feature: x is the contribution, colour the feature's value (numeric
    features, by rank within the rows; categorical and missing values in grey)."""
    figure = Figure(figsize=(7, 0.45 * len(shown) + 1.5), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    cmap = ScalarMappable(norm=Normalize(0.0, 1.0), cmap="coolwarm")
    categorical = set(spec.categorical)
    for position, j in zip(range(len(shown) - 1, -1, -1), shown, strict=True):
        x = values[:, j]
        y = position + _swarm_offsets(x)
        if features[j] in categorical:
            colours = np.tile([0.6, 0.6, 0.6, 1.0], (len(x), 1))
        else:
            raw = pd.to_numeric(X[features[j]], errors="coerce").to_numpy(dtype=float)
            ranks = pd.Series(raw).rank(pct=True).to_numpy()
            colours = cmap.to_rgba(np.nan_to_num(ranks, nan=0.5))
            colours[np.isnan(raw)] = [0.6, 0.6, 0.6, 1.0]
        ax.scatter(x, y, c=colours, s=9, linewidths=0)
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_yticks(np.arange(len(shown))[::-1], labels=[features[j] for j in shown])
    ax.set(xlabel=f"SHAP value ({unit}); > 0 raises the risk of default", title="SHAP values")
    bar = figure.colorbar(cmap, ax=ax, ticks=[0.0, 1.0], aspect=40)
    bar.set_ticklabels(["low", "high"])
    bar.set_label("Feature value (grey: categorical or missing)")
    return figure


def _swarm_offsets(x: np.ndarray, width: float = 0.4, bins: int = 80) -> np.ndarray:
    """Deterministic vertical offsets that stack points with similar x (a simple swarm)."""
    if len(x) == 0:
        return np.zeros(0)
    span = float(np.ptp(x)) or 1.0
    cells = np.floor((x - x.min()) / span * bins).astype(int)
    offsets = np.zeros(len(x))
    counts: dict[int, int] = {}
    for i in np.argsort(x, kind="stable"):
        k = counts.get(cells[i], 0)
        counts[cells[i]] = k + 1
        offsets[i] = math.ceil(k / 2) * (1 if k % 2 else -1)
    peak = float(np.abs(offsets).max()) or 1.0
    return offsets / peak * width
