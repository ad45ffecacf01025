"""Preprocessing fitted inside every model pipeline, so missing values and categories never seen
in training are handled the same way at predict time as during cross-validation.

Two variants: :func:`build_preprocessor` (impute, flag missingness, one-hot encode, optionally
Yeo-Johnson) for models that need a numeric matrix, and :func:`build_binning_preprocessor`
(numbers and text as they are, missing values kept) for the scorecard, whose bins handle
missing values and categories themselves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    PowerTransformer,
)

from creditops.data.validate import to_category_text

MISSING_CATEGORY = "missing"
# Categories rarer than this share of training rows share one "infrequent" column; categories
# unseen in training fall into it too instead of failing.
MIN_CATEGORY_SHARE = 0.005


def categories_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(to_category_text)


def numbers_as_float(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(pd.to_numeric, errors="coerce").astype("float64")


def build_preprocessor(
    numeric: Sequence[str], categorical: Sequence[str], *, scale: bool
) -> ColumnTransformer:
    """Impute, flag missingness, one-hot encode; ``scale`` adds a Yeo-Johnson transform.

    Linear models and the network need the skewed money columns (income, assets, debt) made
    roughly normal; tree models do not, and skip it to stay fast and exact.
    """
    numeric_steps: list[tuple[str, object]] = [
        ("to_float", FunctionTransformer(numbers_as_float, feature_names_out="one-to-one")),
        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
    ]
    if scale:
        numeric_steps.append(("power", PowerTransformer(method="yeo-johnson", standardize=True)))
    categorical_steps = [
        ("to_text", FunctionTransformer(categories_as_text, feature_names_out="one-to-one")),
        ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
        (
            "onehot",
            OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                min_frequency=MIN_CATEGORY_SHARE,
                sparse_output=False,
                dtype=np.float64,
            ),
        ),
    ]
    transformers = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), list(numeric)))
    if categorical:
        transformers.append(("categorical", Pipeline(categorical_steps), list(categorical)))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)


def build_tree_preprocessor(
    numeric: Sequence[str],
    categorical: Sequence[str],
    ordered: Mapping[str, Sequence[str]] | None = None,
) -> ColumnTransformer:
    """Columns for trees that split categories natively: numbers as they are (missing stays
    NaN, the trees learn where it goes), one integer code per category, and categories with an
    expected risk order coded along that order so a monotone constraint can hold on them.

    Output layout: numeric, then ordered categorical, then (unordered) categorical columns;
    rare categories share one code, and unseen ones are missing.
    """
    ordered = {c: list(v) for c, v in (ordered or {}).items() if c in set(categorical)}
    unordered = [c for c in categorical if c not in ordered]
    transformers = []
    if numeric:
        transformers.append(
            (
                "numeric",
                Pipeline(
                    [
                        (
                            "to_float",
                            FunctionTransformer(numbers_as_float, feature_names_out="one-to-one"),
                        )
                    ]
                ),
                list(numeric),
            )
        )
    if ordered:
        transformers.append(
            (
                "ordered",
                Pipeline(
                    [
                        (
                            "to_text",
                            FunctionTransformer(categories_as_text, feature_names_out="one-to-one"),
                        ),
                        (
                            "codes",
                            OrdinalEncoder(
                                categories=[list(ordered[c]) for c in ordered],
                                handle_unknown="use_encoded_value",
                                unknown_value=np.nan,
                                dtype=np.float64,
                            ),
                        ),
                    ]
                ),
                list(ordered),
            )
        )
    if unordered:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        (
                            "to_text",
                            FunctionTransformer(categories_as_text, feature_names_out="one-to-one"),
                        ),
                        (
                            "codes",
                            OrdinalEncoder(
                                handle_unknown="use_encoded_value",
                                unknown_value=np.nan,
                                min_frequency=MIN_CATEGORY_SHARE,
                                dtype=np.float64,
                            ),
                        ),
                    ]
                ),
                unordered,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)


def build_binning_preprocessor(
    numeric: Sequence[str], categorical: Sequence[str]
) -> ColumnTransformer:
    """Numbers as float64 with NaN kept, categories as text with NaN for missing, each column
    under its own name, as a DataFrame: what a binning model reads (it bins missing values
    and categories itself, and needs each column's name and kind)."""
    transformers = []
    if numeric:
        converter = FunctionTransformer(numbers_as_float, feature_names_out="one-to-one")
        transformers.append(("numeric", converter, list(numeric)))
    if categorical:
        converter = FunctionTransformer(categories_as_text, feature_names_out="one-to-one")
        transformers.append(("categorical", converter, list(categorical)))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return preprocess.set_output(transform="pandas")
