"""The profile's figures: a feature's rows and bad rate by bin (the analyst's first look at a
characteristic), its distribution by outcome, and the correlations between numeric features."""

from __future__ import annotations

from itertools import pairwise

from creditops.data.profile import Correlations, FeatureProfile
from creditops.serving.ui.charts import DECLINE, LINE, Figure, layout

__all__ = ["correlations", "feature_figures"]

GOOD = "#56B4E9"


def feature_figures(feature: FeatureProfile) -> dict[str, Figure]:
    """``bins``: goods and bads per bin with the bad rate over them; ``histogram``: a numeric
    feature's distribution by outcome."""
    labels = [b.label for b in feature.bins]
    bads = [b.bads for b in feature.bins]
    goods = [b.count - b.bads for b in feature.bins]
    figures: dict[str, Figure] = {
        "bins": {
            "data": [
                {"type": "bar", "name": "repaid", "x": labels, "y": goods,
                 "marker": {"color": GOOD}},
                {"type": "bar", "name": "defaulted", "x": labels, "y": bads,
                 "marker": {"color": DECLINE}},
                {"type": "scatter", "mode": "lines+markers", "name": "bad rate", "x": labels,
                 "y": [b.bad_rate for b in feature.bins], "yaxis": "y2",
                 "line": {"color": LINE}},
            ],
            "layout": layout(
                barmode="stack",
                xaxis={"title": {"text": feature.name}, "type": "category"},
                yaxis={"title": {"text": "applications"}},
                yaxis2={"title": {"text": "bad rate"}, "overlaying": "y", "side": "right",
                        "tickformat": ".0%", "rangemode": "tozero"},
            ),
        }
    }  # fmt: skip
    if feature.histogram is not None:
        edges = feature.histogram.edges
        centres = [(a + b) / 2 for a, b in pairwise(edges)]
        figures["histogram"] = {
            "data": [
                {"type": "bar", "name": "repaid", "x": centres, "y": feature.histogram.goods,
                 "marker": {"color": GOOD}, "opacity": 0.75},
                {"type": "bar", "name": "defaulted", "x": centres, "y": feature.histogram.bads,
                 "marker": {"color": DECLINE}, "opacity": 0.75},
            ],
            "layout": layout(
                barmode="overlay",
                bargap=0.02,
                xaxis={"title": {"text": feature.name}},
                yaxis={"title": {"text": "applications"}},
            ),
        }  # fmt: skip
    return figures


def correlations(matrix: Correlations) -> Figure | None:
    """Pearson correlations as a heatmap (None with fewer than two numeric features)."""
    if len(matrix.features) < 2:
        return None
    size = max(320, 24 * len(matrix.features) + 120)
    return {
        "data": [
            {
                "type": "heatmap",
                "x": matrix.features,
                "y": matrix.features,
                "z": matrix.matrix,
                "zmin": -1,
                "zmax": 1,
                "colorscale": "RdBu",
                "reversescale": True,
                "hovertemplate": "%{y} × %{x}: %{z:.2f}<extra></extra>",
            }
        ],
        "layout": layout(height=size, margin={"l": 140, "r": 24, "t": 16, "b": 140}),
    }
