"""The out-of-range check on its own: the share of decisions per feature outside the version's
training ranges and categories (the service's own definition), its flags at the warning and
critical shares, and the same result fed whole or chunk by chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditops.data.experience import Experience
from creditops.data.spec import FeatureSchema
from creditops.exceptions import NotFittedError
from creditops.monitoring.out_of_range import OutOfRangeCalculator, OutOfRangeConfig

SCHEMA = (
    FeatureSchema(name="Amount", kind="numeric", missing_rate=0, minimum=100, maximum=5000),
    FeatureSchema(name="Age", kind="numeric", missing_rate=0, minimum=18, maximum=75),
    FeatureSchema(name="Home", kind="categorical", missing_rate=0.1, categories=["owner", "rent"]),
)


def _calculator(**config: float) -> OutOfRangeCalculator:
    experience = Experience.from_schema(SCHEMA)
    return OutOfRangeCalculator(OutOfRangeConfig(**config)).fit(experience)


def _decisions(n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "f_Amount": rng.uniform(100, 5000, n),
            "f_Age": rng.integers(18, 76, n).astype(float),
            "f_Home": rng.choice(["owner", "rent", None], n),
        }
    )
    frame.attrs["feature_columns"] = {"Amount": "f_Amount", "Age": "f_Age", "Home": "f_Home"}
    return frame


def test_shares_per_feature_and_flags_at_each_level():
    frame = _decisions()
    frame.loc[:59, "f_Amount"] = 9000.0  # 6%: critical
    frame.loc[100:119, "f_Home"] = "houseboat"  # 2%: a warning
    frame.loc[200:204, "f_Age"] = 17.0  # 0.5%: below the warning share
    frame.loc[300, "f_Amount"] = np.nan  # missing is never outside
    result = _calculator(warning=0.01, critical=0.05).calculate(frame, min_rows=100)
    assert result.judged
    assert result.features == {"Amount": 0.06, "Age": 0.005, "Home": 0.02}
    assert result.share == pytest.approx(0.085)
    flags = {f.subject: f for f in result.flags}
    assert set(flags) == {"Amount", "Home"}
    assert (flags["Amount"].level, flags["Amount"].threshold) == ("critical", 0.05)
    assert (flags["Home"].level, flags["Home"].threshold) == ("warning", 0.01)
    assert "categories seen in training: owner, rent" in flags["Home"].message
    assert "training range 100 to 5000" in flags["Amount"].message
    assert result.level == "critical"


def test_chunk_by_chunk_equals_whole_and_too_few_rows_are_not_judged():
    frame = _decisions()
    frame.loc[::7, "f_Amount"] = 1.0
    calculator = _calculator()
    whole = calculator.calculate(frame, min_rows=100)
    chunks = [frame.iloc[i : i + 128] for i in range(0, len(frame), 128)]
    for chunk in chunks:
        chunk.attrs = dict(frame.attrs)
    assert calculator.calculate_chunks(chunks, min_rows=100) == whole
    few = calculator.calculate(frame.head(50), min_rows=100)
    assert not few.judged
    assert few.flags == []
    assert "fewer than 100" in few.notes[0]


def test_config_and_fitting_are_checked():
    with pytest.raises(ValueError, match="critical must be at least the warning share"):
        OutOfRangeConfig(warning=0.1, critical=0.05)
    with pytest.raises(NotFittedError):
        OutOfRangeCalculator().calculate(_decisions())


def test_one_application_is_judged_as_its_column_is():
    experience = Experience.from_schema(SCHEMA, ["Home", "Amount", "Age"])
    application = {"Amount": 5000.5, "Age": 18.0, "Home": "castle"}
    assert experience.outside(application) == ["Home", "Amount"]  # in the given order
    assert experience.outside({"Amount": None, "Age": 75.0, "Home": None}) == []
    column = pd.Series(["owner", None, "castle"])
    assert experience.outside_mask("Home", column).tolist() == [False, False, True]
