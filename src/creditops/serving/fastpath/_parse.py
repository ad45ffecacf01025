"""Request records to numbers and category text, exactly as the pipeline reads a DataFrame."""

from __future__ import annotations

import math

import pandas as pd


def _number(value: object) -> float:
    """A request value as the pipeline's ``pd.to_numeric(errors="coerce")`` would read it."""
    if value is None:
        return math.nan
    kind = type(value)
    if kind is float or kind is int or kind is bool:
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        # pandas refuses digit separators and non-ASCII digits that float() accepts.
        if not text.isascii() or "_" in text:
            return math.nan
        try:
            return float(text)
        except ValueError:
            return math.nan
    try:
        return float(value)  # numpy scalars, Decimal; int overflow raises like pandas
    except (TypeError, ValueError):
        return math.nan


def _text(value: object) -> str | None:
    """A request value as ``to_category_text`` would read it; None when missing."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and value != value:
        return None
    text = (value if isinstance(value, str) else str(value)).strip()
    return text or None
