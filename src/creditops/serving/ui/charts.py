"""Plotly figures as plain JSON (data + layout), built here and drawn by ``static/ui.js``:
the page carries the figure in a ``data-figure`` attribute, so no inline script is needed.
Every figure has a one-line caption in its template saying what to look for."""

from __future__ import annotations

from collections.abc import Sequence
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
        "margin": {"l": 56, "r": 24, "t": 16, "b": 48},
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "legend": {"orientation": "h", "y": -0.2},
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
