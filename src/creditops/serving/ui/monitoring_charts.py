"""The monitoring page's figures, from a stored timeline (plain JSON, see
:mod:`creditops.monitoring.timeline`): the drift heatmap, prediction drift and out-of-range
share, realised performance beside the estimate and its band, approval by group with the
four-fifths line, and one feature's distribution in one window beside the reference."""

from __future__ import annotations

from html import escape
from typing import Any

from creditops.serving.ui.charts import APPROVE, DECLINE, GREY, LINE, REFER, Figure, layout

__all__ = [
    "LEVEL_CODES",
    "distribution",
    "drift_heatmap",
    "fairness",
    "performance",
    "prediction_drift",
]

#: Heatmap values per level; "insufficient" is left blank (too few decisions to judge).
LEVEL_CODES = {"stable": 0, "warning": 1, "critical": 2}
_PALETTE = ["#CFE8DA", "#F5C77E", "#D55E00"]
_GROUP_COLOURS = [LINE, REFER, APPROVE, DECLINE, "#CC79A7", "#56B4E9", "#F0E442", GREY]


def _levels_scale() -> list[list[Any]]:
    # Three flat bands over z in [0, 2]: each level one colour.
    return [
        [0.0, _PALETTE[0]], [1 / 3, _PALETTE[0]],
        [1 / 3, _PALETTE[1]], [2 / 3, _PALETTE[1]],
        [2 / 3, _PALETTE[2]], [1.0, _PALETTE[2]],
    ]  # fmt: skip


def _number(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def drift_heatmap(timeline: dict[str, Any]) -> Figure | None:
    """Features (rows, the most drifted first) × windows, coloured stable / warning /
    critical; the hover names the statistic; ``customdata`` carries (feature, window index)
    for the click that shows the distributions."""
    windows = timeline["windows"]
    if not windows:
        return None
    features = [f["feature"] for f in timeline["features"]]
    by_name = {f["feature"]: f for f in timeline["features"]}

    def severity(name: str) -> int:
        return sum(LEVEL_CODES.get(w["features"].get(name, {}).get("level"), 0) for w in windows)

    features.sort(key=lambda name: (-severity(name), name))
    labels = [w["label"] for w in windows]
    z, text, custom = [], [], []
    for name in features:
        row, hover, data = [], [], []
        for index, window in enumerate(windows):
            cell = window["features"].get(name) or {"level": "insufficient"}
            row.append(LEVEL_CODES.get(cell["level"]))
            reference = by_name[name]
            hover.append(
                f"{escape(name)}, {window['label']}<br>{cell['level']}: {reference['method']} "
                f"{_number(cell.get('statistic'))} (threshold {_number(reference['threshold'])})"
                f"<br>{cell.get('n', 0):,} values"
            )
            data.append([name, index])
        z.append(row)
        text.append(hover)
        custom.append(data)
    return {
        "data": [
            {
                "type": "heatmap",
                "x": labels,
                "y": features,
                "z": z,
                "zmin": 0,
                "zmax": 2,
                "text": text,
                "customdata": custom,
                "hovertemplate": "%{text}<extra></extra>",
                "colorscale": _levels_scale(),
                "xgap": 2,
                "ygap": 2,
                "colorbar": {
                    "tickvals": [1 / 3, 1, 5 / 3],
                    "ticktext": ["stable", "warning", "critical"],
                    "len": 0.6,
                },
            }
        ],
        "layout": layout(
            height=max(260, 26 * len(features) + 120),
            margin={"l": 150, "r": 24, "t": 16, "b": 90},
            xaxis={"type": "category", "tickangle": -35},
            yaxis={"type": "category", "autorange": "reversed"},
        ),
    }


def prediction_drift(timeline: dict[str, Any]) -> Figure:
    windows = timeline["windows"]
    labels = [w["label"] for w in windows]
    return {
        "data": [
            {"type": "scatter", "mode": "lines+markers", "name": "PSI of the scores",
             "x": labels, "y": [w.get("prediction_psi") for w in windows],
             "line": {"color": LINE}},
            {"type": "bar", "name": "share out of the training range", "x": labels,
             "y": [w.get("out_of_range_share") for w in windows], "yaxis": "y2",
             "marker": {"color": GREY}, "opacity": 0.45},
        ],
        "layout": layout(
            xaxis={"type": "category"},
            yaxis={"title": {"text": "PSI"}, "rangemode": "tozero"},
            yaxis2={"title": {"text": "out of range"}, "overlaying": "y", "side": "right",
                    "tickformat": ".0%", "rangemode": "tozero", "showgrid": False},
            shapes=[_hline(0.10, REFER), _hline(0.25, DECLINE)],
        ),
    }  # fmt: skip


def _hline(y: float, colour: str, dash: str = "dot") -> dict[str, Any]:
    return {
        "type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": y, "y1": y,
        "line": {"color": colour, "dash": dash, "width": 1},
    }  # fmt: skip


def performance(timeline: dict[str, Any]) -> Figure:
    """Realised AUC where outcomes are known, the CBPE estimate with its band, and the test
    AUC the model was chosen on."""
    windows = timeline["windows"]
    labels = [w["label"] for w in windows]

    def field(part: str, key: str) -> list[Any]:
        return [(w.get(part) or {}).get(key) for w in windows]

    low, high = field("estimated", "band_low"), field("estimated", "band_high")
    data = [
        {"type": "scatter", "mode": "lines", "x": labels, "y": high, "name": "band",
         "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip"},
        {"type": "scatter", "mode": "lines", "x": labels, "y": low, "name": "estimate's band",
         "fill": "tonexty", "fillcolor": "rgba(0,114,178,0.15)", "line": {"width": 0}},
        {"type": "scatter", "mode": "lines+markers", "x": labels,
         "y": field("estimated", "roc_auc"), "name": "estimated AUC (CBPE)",
         "line": {"color": LINE, "dash": "dash"}},
        {"type": "scatter", "mode": "lines+markers", "x": labels,
         "y": field("realised", "roc_auc"), "name": "realised AUC", "line": {"color": DECLINE}},
    ]  # fmt: skip
    shapes = []
    if timeline.get("reference_auc") is not None:
        shapes.append(_hline(timeline["reference_auc"], GREY, "dash"))
    return {
        "data": data,
        "layout": layout(
            xaxis={"type": "category"}, yaxis={"title": {"text": "ROC AUC"}}, shapes=shapes
        ),
    }


def fairness(timeline: dict[str, Any]) -> list[tuple[str, Figure]]:
    """Per protected attribute: each group's approval rate by window, and the disparate
    impact ratio against the four-fifths line."""
    windows = timeline["windows"]
    labels = [w["label"] for w in windows]
    attributes: dict[str, dict[str, list[Any]]] = {}
    ratios: dict[str, list[Any]] = {}
    for index, window in enumerate(windows):
        for attribute in window.get("fairness") or []:
            name = attribute["attribute"]
            groups = attributes.setdefault(name, {})
            ratios.setdefault(name, [None] * len(windows))[index] = attribute.get(
                "disparate_impact_ratio"
            )
            for group in attribute.get("groups") or []:
                series = groups.setdefault(str(group["group"]), [None] * len(windows))
                series[index] = group.get("approval_rate")
    figures = []
    for name, groups in attributes.items():
        data = [
            {"type": "scatter", "mode": "lines+markers", "x": labels, "y": series,
             "name": f"{name} = {group}", "line": {"color": _GROUP_COLOURS[i % 8]}}
            for i, (group, series) in enumerate(sorted(groups.items()))
        ]  # fmt: skip
        data.append(
            {"type": "scatter", "mode": "lines+markers", "x": labels, "y": ratios[name],
             "name": "disparate impact ratio", "yaxis": "y2",
             "line": {"color": "#000000", "dash": "dot"}}
        )  # fmt: skip
        figures.append(
            (
                name,
                {
                    "data": data,
                    "layout": layout(
                        xaxis={"type": "category"},
                        yaxis={"title": {"text": "approval rate"}, "tickformat": ".0%",
                               "range": [0, 1]},
                        yaxis2={"title": {"text": "ratio"}, "overlaying": "y", "side": "right",
                                "range": [0, 1.05], "showgrid": False},
                        shapes=[{**_hline(timeline.get("di_threshold", 0.8), DECLINE, "dash"),
                                 "yref": "y2"}],
                    ),
                },
            )
        )  # fmt: skip
    return figures


def distribution(reference: dict[str, Any], cell: dict[str, Any], label: str) -> Figure:
    """One feature's shares per bin: the training rows beside one window's decisions."""
    return {
        "data": [
            {"type": "bar", "name": "training (reference)", "x": reference["bins"],
             "y": reference["shares"], "marker": {"color": GREY}},
            {"type": "bar", "name": label, "x": reference["bins"], "y": cell.get("shares"),
             "marker": {"color": LINE}},
        ],
        "layout": layout(
            barmode="group",
            xaxis={"type": "category", "title": {"text": reference["feature"]}},
            yaxis={"title": {"text": "share"}, "tickformat": ".0%"},
        ),
    }  # fmt: skip
