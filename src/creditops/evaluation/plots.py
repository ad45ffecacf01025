"""Diagnostic plots (ROC, precision–recall, calibration, confusion matrix) as matplotlib figures.

Uses the non-interactive Agg canvas directly so plotting works on servers with no display and
never changes the global pyplot backend.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve


def _figure() -> tuple[Figure, object]:
    figure = Figure(figsize=(5, 4), dpi=100, layout="constrained")
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
