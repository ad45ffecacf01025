"""Plotly figures as plain JSON (data + layout), built here and drawn by ``static/ui.js``:
the page carries the figure in a ``data-figure`` attribute, so no inline script is needed.
Every figure has a one-line caption in its template saying what to look for."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

from creditops.store.decision_stats import HourlyDecisions

Figure = dict[str, Any]

# Colour-blind-safe (Okabe–Ito) colours, one meaning each across the dashboard.
APPROVE = "#009E73"
REFER = "#E69F00"
DECLINE = "#D55E00"
LINE = "#0072B2"
GREY = "#999999"


def layout(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "margin": {"l": 56, "r": 24, "t": 16, "b": 64},
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "legend": {"orientation": "h", "y": -0.3},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "height": 320,
    }
    base.update(overrides)
    return base


def downsample(xs: Sequence[float], ys: Sequence[float], points: int = 400) -> tuple[list, list]:
    """At most ``points`` evenly spaced points of a curve (first and last kept): a ROC curve of
    100,000 thresholds draws the same with 400."""
    n = len(xs)
    if n <= points:
        return list(xs), list(ys)
    step = (n - 1) / (points - 1)
    index = sorted({round(i * step) for i in range(points)})
    return [xs[i] for i in index], [ys[i] for i in index]


def hourly_decisions(hours: Sequence[HourlyDecisions]) -> Figure:
    x = [h.hour.isoformat() for h in hours]
    bars = [
        {
            "type": "bar",
            "name": name,
            "x": x,
            "y": [getattr(h, key) for h in hours],
            "marker": {"color": colour},
        }
        for key, name, colour in (
            ("approve", "approve", APPROVE),
            ("refer", "refer", REFER),
            ("decline", "decline", DECLINE),
        )
    ]
    line = {
        "type": "scatter",
        "mode": "lines+markers",
        "name": "mean probability of default",
        "x": x,
        "y": [h.mean_probability for h in hours],
        "yaxis": "y2",
        "line": {"color": LINE},
    }
    return {
        "data": [*bars, line],
        "layout": layout(
            barmode="stack",
            yaxis={"title": {"text": "decisions"}, "rangemode": "tozero"},
            yaxis2={
                "title": {"text": "mean PD"},
                "overlaying": "y",
                "side": "right",
                "tickformat": ".0%",
                "rangemode": "tozero",
            },
            xaxis={"type": "date"},
            margin={"l": 56, "r": 64, "t": 16, "b": 48},
        ),
    }


# --------------------------------------------------------------------------- the Decide page


def shap_waterfall(shap: dict[str, Any], bars: int = 10) -> Figure:
    """One applicant's SHAP contributions as a waterfall, from the average applicant (the
    explainer's base value) to this one: the ``bars`` largest features, the rest together."""
    contributions = sorted(shap["contributions"], key=lambda c: -abs(c["contribution"]))
    shown, rest = contributions[:bars], contributions[bars:]
    labels = ["average applicant"]
    values = [shap["base_value"]]
    measures = ["absolute"]
    for item in shown:
        labels.append(f"{item['feature']} = {_shown_value(item['value'])}")
        values.append(item["contribution"])
        measures.append("relative")
    if rest:
        labels.append(f"{len(rest)} other features")
        values.append(sum(c["contribution"] for c in rest))
        measures.append("relative")
    labels.append(f"this applicant ({shap['proba']:.1%})")
    values.append(shap["raw_output"])
    measures.append("total")
    # The running total's extent, padded so that the values printed beside the bars fit.
    running = [values[0]]
    for value in values[1:-1]:
        running.append(running[-1] + value)
    low, high = min(0.0, *running, values[-1]), max(0.0, *running, values[-1])
    pad = 0.18 * (high - low or 1.0)
    space = (
        "log-odds of default" if shap["output_space"] == "log_odds" else "probability of default"
    )
    return {
        "data": [
            {
                "type": "waterfall",
                "orientation": "h",
                "y": labels,
                "x": values,
                "measure": measures,
                "text": [
                    f"{v:+.2f}" if m == "relative" else f"{v:.2f}"
                    for v, m in zip(values, measures, strict=True)
                ],
                "textposition": "outside",
                "cliponaxis": False,
                "increasing": {"marker": {"color": DECLINE}},
                "decreasing": {"marker": {"color": APPROVE}},
                "totals": {"marker": {"color": LINE}},
                "connector": {"line": {"color": GREY, "width": 1}},
                "hovertemplate": "%{y}: %{x:.3f}<extra></extra>",
            }
        ],
        "layout": layout(
            height=80 + 30 * len(labels),
            showlegend=False,
            yaxis={"autorange": "reversed", "automargin": True},
            xaxis={"title": {"text": space}, "zeroline": True, "range": [low - pad, high + pad]},
            margin={"l": 16, "r": 16, "t": 8, "b": 48},
        ),
    }


def _shown_value(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)[:40]


def decision_mix(counts: dict[str, int]) -> Figure:
    names = ("approve", "refer", "decline")
    return {
        "data": [
            {
                "type": "bar",
                "x": list(names),
                "y": [counts.get(name, 0) for name in names],
                "marker": {"color": [APPROVE, REFER, DECLINE]},
                "text": [f"{counts.get(name, 0):,}" for name in names],
                "textposition": "auto",
                "hovertemplate": "%{x}: %{y:,}<extra></extra>",
            }
        ],
        "layout": layout(showlegend=False, yaxis=_count_axis(counts.values())),
    }


def probability_histogram(
    edges: Sequence[float], counts: Sequence[int], approve_below: float, decline_at: float
) -> Figure:
    """Decisions per probability-of-default bin, with the policy's two cut-offs marked."""
    centres = [(a + b) / 2 for a, b in pairwise(edges)]
    width = edges[1] - edges[0] if len(edges) > 1 else 0.025
    cutoffs = [
        {
            "type": "line",
            "x0": x,
            "x1": x,
            "y0": 0,
            "y1": 1,
            "yref": "paper",
            "line": {"color": colour, "dash": "dash", "width": 2},
        }
        for x, colour in ((approve_below, APPROVE), (decline_at, DECLINE))
    ]
    return {
        "data": [
            {
                "type": "bar",
                "x": centres,
                "y": list(counts),
                "width": width,
                "marker": {"color": LINE},
                "hovertemplate": "PD %{x:.1%}: %{y:,}<extra></extra>",
            }
        ],
        "layout": layout(
            showlegend=False,
            bargap=0.05,
            shapes=cutoffs,
            xaxis={
                "title": {"text": "probability of default"},
                "tickformat": ".0%",
                "range": [0, 1],
            },
            yaxis=_count_axis(counts),
        ),
    }


def _count_axis(counts: Iterable[int]) -> dict[str, Any]:
    # Whole-number ticks: a handful of applications would otherwise get ticks at 0.2, 0.4...
    axis: dict[str, Any] = {"title": {"text": "applications"}, "rangemode": "tozero"}
    if max(counts, default=0) <= 5:
        axis["dtick"] = 1
    return axis
