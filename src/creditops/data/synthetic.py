"""Seeded synthetic scale-up of a tabular credit dataset, for load and scale tests (not privacy).

Method: an atom-preserving smoothed bootstrap, i.e. sampling from a product-kernel density
estimate centred on the source rows. Whole source rows are drawn with replacement, stratified by
the target when one is given, so every categorical value, every missingness pattern, the joint
structure between columns and the relation to the target come from a real row. Numeric values
are then jittered with Gaussian noise of ``noise * std`` (std within the row's target class), so
the output holds new values rather than exact copies of source rows.

Two refinements keep the marginals faithful on real credit data, whose numeric columns are
largely point masses (``Debt == 0`` for 83% of applicants, loan terms of 36/48/60 months, round
amounts such as 1000):

* values that are atoms of their column (at least 1% of its non-missing values and at least 5
  rows) are kept exactly. Smoothing a spike moves half of its mass to either side and shifts the
  distribution function by that much: on ``credit_data`` the KS distance to the source grows
  from about 0.01 to 0.16 for ``Time`` and 0.82 for ``Debt``;
* jittered values are reflected at the column's observed ``[min, max]`` and then clipped, the
  usual boundary correction for kernel estimates; plain clipping would pile mass on the bounds
  (e.g. on ``Debt == 0``). Non-negative columns therefore stay non-negative.

Integer-valued columns (integer dtypes, and float columns holding only whole numbers, such as
``Income`` with its missing values) are rounded back to whole numbers. Columns that are not
jittered (strings, categories, booleans, dates, constant or all-missing columns, every numeric
column when ``noise == 0``) take the value of the sampled row, so they keep their dtype and only
hold values seen in the source. Integer id columns (unique, no missing values, and named like an
id or holding a contiguous range) get fresh unique ids counting up from the source minimum.

Stratification assigns output row ``m`` to a class through the Weyl sequence ``m * g mod N``
(``N`` source rows, ``g`` coprime to ``N``), so every stretch of rows, and the whole output, is
within a row or two of the source class shares; rows are then shuffled within each block.
Randomness is drawn in blocks of ``BLOCK_ROWS`` rows, each from its own generator seeded by
``(seed, block number)``: the result depends on ``seed`` only, never on ``chunk_rows``, which
bounds the temporary arrays (it is rounded up to whole blocks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray
from pandas.api.types import is_bool_dtype, is_float_dtype, is_integer_dtype

from creditops.data.spec import ID_NAME

__all__ = ["BLOCK_ROWS", "synthesize"]

BLOCK_ROWS = 8192
"""Rows per random block, the unit of reproducibility (independent of ``chunk_rows``)."""

_ATOM_SHARE = 0.01
_ATOM_MIN_COUNT = 5
_MIN_CONTIGUOUS_ID_ROWS = 10
_GOLDEN = (1 + math.sqrt(5)) / 2


@dataclass(frozen=True)
class _Strata:
    """Source rows grouped by target class (one class when there is no target)."""

    order: np.ndarray  # source row positions sorted by class
    starts: np.ndarray  # first position in ``order`` of each class
    sizes: np.ndarray  # source rows per class
    cumulative: np.ndarray  # 0, then cumulative sizes
    step: int  # Weyl step, coprime to the number of source rows


@dataclass(frozen=True)
class _Jitter:
    """The numeric columns that get smoothed, as float matrices over the source rows."""

    positions: list[int]  # column positions in the frame
    values: np.ndarray  # (n_source, k) float64, NaN where missing
    bandwidth: np.ndarray  # (n_source, k) noise std per source cell; 0 for atoms and missing
    low: np.ndarray  # (k,) observed minimum
    high: np.ndarray  # (k,) observed maximum
    integral: np.ndarray  # (k,) bool: round back to whole numbers
    moved_per_row: np.ndarray  # (n_source,) number of cells of each source row to jitter


def synthesize(
    data: pd.DataFrame,
    n_rows: int,
    *,
    target: str | None = None,
    seed: int = 0,
    noise: float = 0.1,
    chunk_rows: int = 250_000,
) -> pd.DataFrame:
    """Generate ``n_rows`` synthetic rows with the schema and joint distribution of ``data``.

    Args:
        data: source frame (numeric and categorical columns, missing values allowed).
        n_rows: number of rows to generate (>= 1).
        target: optional target column; sampling is stratified by it so that the class
            shares (e.g. the positive rate) are kept to within a couple of rows.
        seed: non-negative seed; the same seed always gives the same frame.
        noise: kernel bandwidth as a fraction of each numeric column's within-class std;
            0 gives a plain (stratified) bootstrap.
        chunk_rows: rows generated per step, bounding temporary memory; it does not change
            the result.

    Returns:
        A frame with the columns, column order and dtypes of ``data`` and a fresh RangeIndex.

    Raises:
        TypeError: ``data`` is not a DataFrame.
        ValueError: ``data`` is empty or has duplicate column names, ``target`` is not one of
            its columns, or ``n_rows``, ``seed``, ``noise`` or ``chunk_rows`` is out of range.
    """
    _validate(data, n_rows, target=target, seed=seed, noise=noise, chunk_rows=chunk_rows)
    target_position = None if target is None else data.columns.get_loc(target)
    strata = _strata(data, target)
    ids = _id_positions(data, exclude=target_position)
    jitter = _jitter_plan(data, strata, noise=float(noise), exclude={target_position, *ids})

    source_rows = np.empty(n_rows, dtype=np.intp)
    smoothed = np.empty((len(jitter.positions), n_rows), dtype=np.float64)
    chunk = -(-chunk_rows // BLOCK_ROWS) * BLOCK_ROWS
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        rows, normals = _draw(strata, seed, start, stop, moved_per_row=jitter.moved_per_row)
        source_rows[start:stop] = rows
        if jitter.positions:
            smoothed[:, start:stop] = _smooth(jitter, rows, normals).T

    columns: dict[int, ExtensionArray | np.ndarray] = {}
    for j, position in enumerate(jitter.positions):
        columns[position] = _as_dtype(smoothed[j], data.dtypes.iloc[position])
    del smoothed
    for position in ids:
        fresh = _fresh_ids(data.iloc[:, position], n_rows)
        if fresh is not None:
            columns[position] = fresh
    for position in range(data.shape[1]):
        if position not in columns:
            columns[position] = data.iloc[:, position].array.take(source_rows)

    # Series with the explicit source dtype: pandas 3 would otherwise infer ``str`` for object.
    out = pd.DataFrame(
        {p: pd.Series(columns[p], dtype=data.dtypes.iloc[p], copy=False) for p in columns},
        columns=range(data.shape[1]),
        copy=False,
    )
    out.columns = data.columns.copy()
    return out


def _validate(
    data: pd.DataFrame,
    n_rows: int,
    *,
    target: str | None,
    seed: int,
    noise: float,
    chunk_rows: int,
) -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if data.shape[1] == 0:
        raise ValueError("data is empty: it has no columns")
    if len(data) == 0:
        raise ValueError("data is empty: it has no rows to sample from")
    if data.columns.has_duplicates:
        duplicated = sorted({str(c) for c in data.columns[data.columns.duplicated()]})
        raise ValueError(f"data has duplicate column names: {duplicated}")
    if not _is_int(n_rows) or n_rows < 1:
        raise ValueError(f"n_rows must be an integer >= 1, got {n_rows!r}")
    if not _is_int(chunk_rows) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not _is_number(noise) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if target is not None and target not in data.columns:
        raise ValueError(f"target column {target!r} is not a column of data")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value: object) -> bool:
    return _is_int(value) or isinstance(value, float | np.floating)


def _strata(data: pd.DataFrame, target: str | None) -> _Strata:
    if target is None:
        codes = np.zeros(len(data), dtype=np.intp)
    else:
        codes = np.asarray(pd.factorize(data[target], use_na_sentinel=False)[0], dtype=np.intp)
    sizes = np.bincount(codes)
    cumulative = np.concatenate(([0], np.cumsum(sizes)))
    n_source = len(data)
    step = max(1, round(n_source / _GOLDEN))
    while math.gcd(step, n_source) != 1:
        step += 1
    return _Strata(
        order=np.argsort(codes, kind="stable"),
        starts=cumulative[:-1],
        sizes=sizes,
        cumulative=cumulative,
        step=step,
    )


def _draw(
    strata: _Strata, seed: int, start: int, stop: int, *, moved_per_row: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Source rows for output rows ``[start, stop)`` and one standard normal per cell to jitter.

    Drawn block by block; the normals follow the row-major order of the jittered cells.
    """
    rows = np.empty(stop - start, dtype=np.intp)
    normals = []
    n_source = int(strata.cumulative[-1])
    many_classes = len(strata.sizes) > 1
    for block in range(start // BLOCK_ROWS, -(-stop // BLOCK_ROWS)):
        lo, hi = block * BLOCK_ROWS, min((block + 1) * BLOCK_ROWS, stop)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))
        if many_classes:
            weyl = (np.arange(lo, hi, dtype=np.int64) % n_source) * strata.step % n_source
            labels = rng.permutation(np.searchsorted(strata.cumulative, weyl, side="right") - 1)
        else:
            labels = np.zeros(hi - lo, dtype=np.intp)
        offsets = rng.integers(0, strata.sizes[labels])
        rows[lo - start : hi - start] = strata.order[strata.starts[labels] + offsets]
        if moved_per_row.any():
            normals.append(
                rng.standard_normal(int(moved_per_row[rows[lo - start : hi - start]].sum()))
            )
    return rows, np.concatenate(normals) if normals else np.empty(0)


def _id_positions(data: pd.DataFrame, *, exclude: int | None) -> list[int]:
    """Integer columns that look like ids: unique, complete, named like one or contiguous."""
    positions = []
    for position, (name, dtype) in enumerate(data.dtypes.items()):
        if position == exclude or not is_integer_dtype(dtype) or is_bool_dtype(dtype):
            continue
        column = data.iloc[:, position]
        if len(column) < 2 or column.hasnans or not column.is_unique:
            continue
        span = int(column.max()) - int(column.min()) + 1
        contiguous = len(column) >= _MIN_CONTIGUOUS_ID_ROWS and span == len(column)
        if contiguous or ID_NAME.search(str(name)):
            positions.append(position)
    return positions


def _fresh_ids(column: pd.Series, n_rows: int) -> ExtensionArray | np.ndarray | None:
    """Unique ids counting up from the source minimum, or None if they overflow the dtype."""
    dtype = column.dtype
    numpy_dtype = dtype if isinstance(dtype, np.dtype) else getattr(dtype, "numpy_dtype", None)
    if numpy_dtype is None:
        return None
    first = int(column.min())
    if first + n_rows - 1 > np.iinfo(numpy_dtype).max:
        return None
    ids = np.arange(first, first + n_rows, dtype=np.int64)
    if isinstance(dtype, np.dtype):
        return ids.astype(dtype)
    return pd.array(ids).astype(dtype)


def _jitter_plan(data: pd.DataFrame, strata: _Strata, *, noise: float, exclude: set) -> _Jitter:
    codes = np.empty(len(data), dtype=np.intp)
    codes[strata.order] = np.repeat(np.arange(len(strata.sizes)), strata.sizes)
    positions: list[int] = []
    values: list[np.ndarray] = []
    bandwidths: list[np.ndarray] = []
    lows: list[float] = []
    highs: list[float] = []
    integral: list[bool] = []
    for position, dtype in enumerate(data.dtypes):
        if noise == 0 or position in exclude or is_bool_dtype(dtype):
            continue
        if not (is_integer_dtype(dtype) or is_float_dtype(dtype)):
            continue
        x = data.iloc[:, position].to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(x)
        if not finite.any():
            continue
        low, high = float(x[finite].min()), float(x[finite].max())
        if low == high:
            continue
        scale = noise * _class_std(x, finite, codes, len(strata.sizes))
        bandwidth = np.where(finite & ~_atoms(x, finite), scale[codes], 0.0)
        if not bandwidth.any():
            continue
        positions.append(position)
        values.append(x)
        bandwidths.append(bandwidth)
        lows.append(low)
        highs.append(high)
        whole = bool(np.all(x[finite] == np.round(x[finite])))
        integral.append(is_integer_dtype(dtype) or whole)
    n_source = len(data)
    bandwidth = np.column_stack(bandwidths) if bandwidths else np.empty((n_source, 0))
    return _Jitter(
        positions=positions,
        values=np.column_stack(values) if values else np.empty((n_source, 0)),
        bandwidth=bandwidth,
        low=np.asarray(lows, dtype=np.float64),
        high=np.asarray(highs, dtype=np.float64),
        integral=np.asarray(integral, dtype=bool),
        moved_per_row=(bandwidth > 0).sum(axis=1),
    )


def _class_std(x: np.ndarray, finite: np.ndarray, codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Std (ddof=1) of ``x`` within each class; the pooled std for classes with < 2 values."""
    values, classes = x[finite], codes[finite]
    counts = np.bincount(classes, minlength=n_classes)
    sums = np.bincount(classes, weights=values, minlength=n_classes)
    means = sums / np.maximum(counts, 1)
    squares = np.bincount(classes, weights=(values - means[classes]) ** 2, minlength=n_classes)
    pooled = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        within = np.sqrt(squares / (counts - 1))
    return np.where(counts > 1, within, pooled)


def _atoms(x: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """True where the value is a point mass of its column (kept exactly, never jittered)."""
    _, inverse, counts = np.unique(x[finite], return_inverse=True, return_counts=True)
    threshold = max(_ATOM_MIN_COUNT, _ATOM_SHARE * inverse.size)
    atoms = np.zeros(x.shape, dtype=bool)
    atoms[finite] = counts[inverse] >= threshold
    return atoms


def _smooth(jitter: _Jitter, rows: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Jittered numeric values ``(len(rows), k)`` of the sampled source rows."""
    out = jitter.values[rows]
    bandwidth = jitter.bandwidth[rows].ravel()
    cells = np.flatnonzero(bandwidth > 0)  # row-major; atoms and missing values stay as they are
    c = cells % len(jitter.positions)
    flat = out.ravel()  # a view: writing to it writes to ``out``
    y = flat[cells] + bandwidth[cells] * normals
    low, high = jitter.low[c], jitter.high[c]
    y = np.where(y < low, 2 * low - y, y)
    y = np.where(y > high, 2 * high - y, y)
    np.clip(y, low, high, out=y)
    whole = jitter.integral[c]
    y[whole] = np.round(y[whole])
    flat[cells] = y
    return out


def _as_dtype(values: np.ndarray, dtype: object) -> ExtensionArray | np.ndarray:
    """Cast smoothed float values back to the source column's dtype (NaN = missing)."""
    if isinstance(dtype, np.dtype):
        return values.astype(dtype)
    return pd.array(values, dtype="Float64").astype(dtype)
