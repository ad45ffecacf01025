"""The exploratory profile of a credit dataset: what a credit analyst reads before any model.

Per feature: its missing rate and distinct values; its distribution by outcome; the bad rate,
weight of evidence and information value of each bin (deciles of a number, each category, the
missing values in a bin of their own), the credit analyst's first table; how well it alone
ranks the outcome (single-feature ROC AUC, with the same leakage warning as validation); and,
for a file of recent applications, its population stability index against a reference (the
champion's training rows). For the dataset: the class balance and the correlations between
numeric features.

Files are read by DuckDB, which scans CSV and Parquet in parallel and spills to disk past its
memory limit, so a file of millions of rows is profiled without a Python row loop or a pandas
copy of it. Each feature costs one grouped query (its distinct values with their counts of
goods and bads); every figure of that feature is then computed exactly from those counts.

The per-feature math from those counts (bins, WoE and IV, AUC, histograms, PSI) is
:mod:`creditops.data.binning`.

The SQL here is assembled from column names quoted by ``quote_identifier`` and fixed fragments;
every value is a bound parameter (hence the ``nosec B608`` marks for bandit).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from creditops.data.binning import (
    IV_BANDS,
    BinRow,
    Histogram,
    bin_table,
    categorical_psi,
    histogram,
    interval_labels,
    iv_strength,
    numeric_psi,
    ranked_auc,
    scored_auc,
    weighted_quantile,
)
from creditops.data.spec import DatasetSpec
from creditops.data.validate import leakage_message
from creditops.exceptions import DataValidationError

PROFILE_SCHEMA_VERSION = 1
TOP_CATEGORIES = 20
_MISSING = "Missing"
_HIGH_MISSING = 0.5
_FEW_BADS = 50
# The outcome column the profile adds (1 bad, 0 good, NULL unknown): a name no file uses.
_BAD = '"__creditops_outcome__"'


class FeatureProfile(BaseModel):
    name: str
    kind: Literal["numeric", "categorical"]
    role: Literal["feature", "protected"]
    rows: int
    missing: int
    missing_rate: float
    distinct: int
    stats: dict[str, float | None] = Field(default_factory=dict)
    bins: list[BinRow]
    information_value: float | None
    strength: str | None
    auc: float | None = Field(description="Single-feature ROC AUC, max(AUC, 1 − AUC).")
    leakage: bool
    histogram: Histogram | None = None
    psi: float | None = Field(default=None, description="Against the reference, when given.")


class ClassBalance(BaseModel):
    rows: int
    goods: int
    bads: int
    missing_target: int
    bad_rate: float


class Correlations(BaseModel):
    """Pearson correlations between numeric features (None where a column is constant)."""

    features: list[str]
    matrix: list[list[float | None]]


class DatasetProfile(BaseModel):
    schema_version: int = PROFILE_SCHEMA_VERSION
    source: str
    rows: int
    target: str
    positive: str
    # None for a file without the target column (recent applications, outcomes unknown)
    balance: ClassBalance | None
    features: list[FeatureProfile]
    correlations: Correlations
    warnings: list[str]
    reference: str | None = None
    seconds: float = 0.0

    def by_information_value(self) -> list[FeatureProfile]:
        """Features, most predictive first: the IV table."""
        return sorted(self.features, key=lambda f: (-(f.information_value or 0.0), f.name))

    def feature(self, name: str) -> FeatureProfile:
        return next(f for f in self.features if f.name == name)


# --------------------------------------------------------------------------- entry points


def profile_file(
    path: str | Path,
    spec: DatasetSpec,
    *,
    bins: int = 10,
    leakage_auc: float = 0.95,
    reference: pd.DataFrame | None = None,
    reference_name: str | None = None,
    memory_limit: str = "1GB",
) -> DatasetProfile:
    """Profile a CSV (UTF-8, with a header row) or Parquet file against ``spec``.

    ``reference``: rows to measure each feature's PSI against (e.g. the champion's training
    rows), named ``reference_name`` in the result. Raises DataValidationError naming the
    problem (and the column, where there is one) when the file cannot be profiled.
    """
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise DataValidationError(f"{path.name} is empty")
    started = time.perf_counter()
    with duckdb_connection(memory_limit) as con:
        load_file(con, path)
        return _guarded(
            path.name,
            lambda: _profile(
                con, path.name, spec, bins, leakage_auc, reference, reference_name, started
            ),
        )


def profile_frame(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    *,
    source: str = "data",
    bins: int = 10,
    leakage_auc: float = 0.95,
    reference: pd.DataFrame | None = None,
    reference_name: str | None = None,
) -> DatasetProfile:
    """Profile rows already in memory (see :func:`profile_file`)."""
    started = time.perf_counter()
    with duckdb_connection() as con:
        con.register("source_frame", frame)
        con.execute("CREATE TABLE data AS SELECT * FROM source_frame")
        con.unregister("source_frame")
        return _guarded(
            source,
            lambda: _profile(
                con, source, spec, bins, leakage_auc, reference, reference_name, started
            ),
        )


def _guarded(source: str, work: Callable[[], DatasetProfile]) -> DatasetProfile:
    """``work``, with anything the database refuses reported as a data problem."""
    import duckdb

    try:
        return work()
    except duckdb.Error as exc:
        raise DataValidationError(_read_error(source, str(exc))) from exc


# --------------------------------------------------------------------------- loading


@contextmanager
def duckdb_connection(memory_limit: str = "1GB") -> Iterator[Any]:
    import duckdb

    spill = tempfile.mkdtemp(prefix="creditops-profile-")  # never the working directory
    con = duckdb.connect(
        config={
            "memory_limit": memory_limit,
            "temp_directory": spill,
            "threads": os.cpu_count() or 1,
        }
    )
    try:
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def load_file(con: Any, path: Path) -> None:
    """``path`` (CSV or Parquet) as the table ``data`` of ``con``; DataValidationError naming
    the problem when it cannot be read."""
    import duckdb

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        reader = "read_parquet(?)"
    elif suffix in (".csv", ".txt", ".gz"):
        # Types from the whole file: a text value deep in a numeric column makes the column
        # text here, and the spec check below names it, instead of failing mid-way. Numbers
        # or text only: "yes"/"no" stay categories, as pandas and validation read them.
        reader = (
            "read_csv(?, header = true, sample_size = -1, "
            "auto_type_candidates = ['BIGINT', 'DOUBLE', 'VARCHAR'])"
        )
    else:
        raise DataValidationError(f"{path.name}: expected a .csv or .parquet file")
    try:
        con.execute(f"CREATE TABLE data AS SELECT * FROM {reader}", [str(path)])  # nosec B608
    except duckdb.Error as exc:
        raise DataValidationError(_read_error(path.name, str(exc))) from exc


def _read_error(name: str, message: str) -> str:
    """DuckDB's reason, in a sentence a user can act on."""
    line = re.search(r"CSV Error on Line: (\d+)", message)
    where = f" (line {line.group(1)})" if line else ""
    if "not utf-8 encoded" in message:
        return f"{name} is not UTF-8 text{where}: save it with UTF-8 encoding"
    if "sniffing file" in message:
        return f"{name} is not a CSV file (no column delimiter found; a binary file?)"
    return f"{name} could not be read{where}: {message.strip().splitlines()[0]}"


def quote_identifier(name: str) -> str:
    """A column name as a DuckDB identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- the profile


def _profile(
    con: Any,
    source: str,
    spec: DatasetSpec,
    bins: int,
    leakage_auc: float,
    reference: pd.DataFrame | None,
    reference_name: str | None,
    started: float,
) -> DatasetProfile:
    types = {row[0]: str(row[1]) for row in con.execute("DESCRIBE data").fetchall()}
    rows = int(con.execute("SELECT count(*) FROM data").fetchone()[0])
    if rows == 0:
        raise DataValidationError(f"{source} has a header but no rows")
    has_outcome = spec.target in types
    missing = [c for c in spec.declared_columns() if c not in types and c != spec.target]
    if missing:
        roles = spec.declared_columns()
        listed = ", ".join(f"{c!r} ({roles[c]})" for c in missing)
        raise DataValidationError(
            f"{source} lacks column(s) the spec names: {listed}", column=missing[0]
        )
    if has_outcome:
        _add_outcome(con, spec, types)
        balance = _balance(con, rows, spec)
    else:  # applications without outcomes: distributions and PSI only
        con.execute(f"ALTER TABLE data ADD COLUMN {_BAD} TINYINT")
        balance = None
    numeric, categorical = _feature_kinds(con, spec, types, source)
    protected = [c for c in spec.protected if c not in numeric and c not in categorical]
    features: list[FeatureProfile] = []
    warnings: list[str] = []
    for column in [*numeric, *categorical, *protected]:
        is_numeric = column in numeric or (column in protected and _is_number_type(types[column]))
        counts = _grouped_counts(con, column, is_numeric)
        ref = None if reference is None or column not in reference else reference[column]
        profile = (
            _numeric_profile(column, counts, bins, ref)
            if is_numeric
            else _categorical_profile(column, counts, ref)
        )
        profile.role = "protected" if column in protected else "feature"
        profile.leakage = profile.role == "feature" and (profile.auc or 0.0) >= leakage_auc
        features.append(profile)
        warnings.extend(_warnings(profile))
    if balance is not None and balance.bads < _FEW_BADS:
        warnings.insert(
            0,
            f"only {balance.bads} rows have the positive outcome {spec.positive!r}: figures "
            "by bin are noisy and a model may not learn much",
        )
    return DatasetProfile(
        source=source,
        rows=rows,
        target=spec.target,
        positive=str(spec.positive),
        balance=balance,
        features=features,
        correlations=_correlations(con, numeric),
        warnings=warnings,
        reference=reference_name if reference is not None else None,
        seconds=time.perf_counter() - started,
    )


_NUMBER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE")


def is_number_type(kind: str) -> bool:
    """Whether a DuckDB column type holds numbers."""
    return _is_number_type(kind)


def _is_number_type(kind: str) -> bool:
    return kind.startswith(("DECIMAL", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")) or (
        kind in _NUMBER_TYPES
    )


def _add_outcome(con: Any, spec: DatasetSpec, types: dict[str, str]) -> None:
    """The outcome column: 1 where the target holds the positive value, 0 elsewhere, NULL where
    the target is missing. A numeric target is compared as a number (``positive: 1`` matches 1
    and 1.0), a text one without case or surrounding blanks; any value other than the positive
    one is a good (the profile does not check for more than two classes: validation does)."""
    target = quote_identifier(spec.target)
    positive = str(spec.positive).strip().lower()
    if _is_number_type(types[spec.target]):
        try:
            number = float(positive)
        except ValueError:
            number = math.nan
        matches = f"{target} = {number!r}" if math.isfinite(number) else "false"
    else:
        matches = f"lower(trim(CAST({target} AS VARCHAR))) = {_sql_text(positive)}"
    empty = (
        "false" if _is_number_type(types[spec.target]) else f"trim(CAST({target} AS VARCHAR)) = ''"
    )
    con.execute(
        f"ALTER TABLE data ADD COLUMN {_BAD} TINYINT; "  # nosec B608
        f"UPDATE data SET {_BAD} = CASE WHEN {target} IS NULL OR {empty} THEN NULL "
        f"WHEN {matches} THEN 1 ELSE 0 END"
    )


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _balance(con: Any, rows: int, spec: DatasetSpec) -> ClassBalance:
    bads, goods = con.execute(
        f"SELECT count(*) FILTER (WHERE {_BAD} = 1), count(*) FILTER (WHERE {_BAD} = 0) FROM data"  # nosec B608
    ).fetchone()
    if bads == 0:
        raise DataValidationError(
            f"no row of {spec.target!r} holds the positive value {spec.positive!r}",
            column=spec.target,
        )
    if goods == 0:
        raise DataValidationError(
            f"every row of {spec.target!r} holds the positive value {spec.positive!r}: "
            "there is nothing to tell apart",
            column=spec.target,
        )
    known = int(bads) + int(goods)
    return ClassBalance(
        rows=rows,
        goods=int(goods),
        bads=int(bads),
        missing_target=rows - known,
        bad_rate=int(bads) / known,
    )


def _feature_kinds(
    con: Any, spec: DatasetSpec, types: dict[str, str], source: str
) -> tuple[list[str], list[str]]:
    """The spec's feature types, checked against the file; inferred where the spec is silent."""
    reserved = {spec.target, spec.id, *spec.protected, *spec.pii, _BAD.strip('"')} - {None}
    if spec.features is not None:
        numeric, categorical = list(spec.features.numeric), list(spec.features.categorical)
        for column in numeric:
            if not _is_number_type(types[column]):
                _refuse_text(con, column, source)
        return numeric, categorical
    columns = [c for c in types if c not in reserved]
    numeric = [c for c in columns if _is_number_type(types[c])]
    return numeric, [c for c in columns if c not in set(numeric)]


def _refuse_text(con: Any, column: str, source: str) -> None:
    """Name the first cell of a numeric column that is not a number."""
    quoted = quote_identifier(column)
    found = con.execute(
        f"SELECT n, value FROM (SELECT row_number() OVER () AS n, CAST({quoted} AS VARCHAR) "  # nosec B608
        f"AS value FROM data) WHERE value IS NOT NULL AND trim(value) <> '' "
        "AND TRY_CAST(value AS DOUBLE) IS NULL LIMIT 1"
    ).fetchone()
    if found is None:  # nothing but blanks: a numeric column with every value missing
        return
    raise DataValidationError(
        f"column {column!r} is declared numeric but holds text: {found[1]!r} in data row "
        f"{found[0]}",
        column=column,
    )


def _grouped_counts(con: Any, column: str, numeric: bool) -> dict[str, np.ndarray]:
    """The column's distinct values (NaN / None for missing) with their goods, bads and rows
    (rows include those with a missing outcome)."""
    quoted = quote_identifier(column)
    # TRY_CAST: text cells were refused before, so what does not cast is a blank (missing)
    value = (
        f"TRY_CAST({quoted} AS DOUBLE)"
        if numeric
        else f"NULLIF(trim(CAST({quoted} AS VARCHAR)), '')"
    )
    result = con.execute(
        f"SELECT {value} AS __value, count(*) FILTER (WHERE {_BAD} = 0) AS __goods, "  # nosec B608
        f"count(*) FILTER (WHERE {_BAD} = 1) AS __bads, count(*) AS __rows FROM data GROUP BY 1"
    ).fetchnumpy()
    values = result["__value"]
    if numeric:
        values = np.ma.filled(np.ma.asarray(values).astype(float), np.nan)
    else:
        values = np.array(
            [None if v is None or v is np.ma.masked else str(v) for v in values], dtype=object
        )
    return {
        "values": values,
        "goods": np.asarray(result["__goods"], dtype=np.int64),
        "bads": np.asarray(result["__bads"], dtype=np.int64),
        "rows": np.asarray(result["__rows"], dtype=np.int64),
    }


def _numeric_profile(
    column: str, counts: dict[str, np.ndarray], bins: int, reference: pd.Series | None
) -> FeatureProfile:
    values, goods, bads, rows = counts["values"], counts["goods"], counts["bads"], counts["rows"]
    present = ~np.isnan(values)
    order = np.argsort(values[present], kind="stable")
    x = values[present][order]
    g, b, n = goods[present][order], bads[present][order], rows[present][order]
    total = int(rows.sum())
    missing = total - int(n.sum())
    stats: dict[str, float | None] = {}
    edges: list[float] = []
    if len(x):
        mean = float(np.average(x, weights=n))
        stats = {
            "min": float(x[0]),
            "p01": weighted_quantile(x, n, 0.01),
            "median": weighted_quantile(x, n, 0.5),
            "mean": mean,
            "p99": weighted_quantile(x, n, 0.99),
            "max": float(x[-1]),
            "std": float(math.sqrt(np.average((x - mean) ** 2, weights=n))),
        }
        probs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
        edges = sorted({weighted_quantile(x, n, p) for p in probs})
    # Bin i holds edges[i-1] < x <= edges[i]; the last is open above; missing values apart.
    index = np.searchsorted(np.asarray(edges), x, side="left")
    labels = interval_labels(edges)
    bin_rows = np.bincount(index, weights=n, minlength=len(labels))
    bin_goods = np.bincount(index, weights=g, minlength=len(labels))
    bin_bads = np.bincount(index, weights=b, minlength=len(labels))
    if missing:
        labels.append(_MISSING)
        bin_rows = np.append(bin_rows, missing)
        bin_goods = np.append(bin_goods, goods[~present].sum())
        bin_bads = np.append(bin_bads, bads[~present].sum())
    occupied = bin_rows > 0  # equal quantiles at the top can leave a bin with no rows
    labels = [label for label, keep in zip(labels, occupied, strict=True) if keep]
    table, iv = bin_table(labels, bin_rows[occupied], bin_goods[occupied], bin_bads[occupied])
    # Missing values score lowest, as validation scores them.
    scores_goods = np.concatenate([goods[~present], g])
    scores_bads = np.concatenate([bads[~present], b])
    profile = FeatureProfile(
        name=column,
        kind="numeric",
        role="feature",
        rows=total,
        missing=missing,
        missing_rate=missing / total if total else 0.0,
        distinct=len(x),
        stats=stats,
        bins=table,
        information_value=iv,
        strength=None if iv is None else iv_strength(iv),
        auc=ranked_auc(scores_goods, scores_bads),
        leakage=False,
        histogram=histogram(x, g, b, stats) if len(x) else None,
    )
    if reference is not None:
        profile.psi = numeric_psi(reference, x, n, missing, bins)
    return profile


def _categorical_profile(
    column: str, counts: dict[str, np.ndarray], reference: pd.Series | None
) -> FeatureProfile:
    values, goods, bads, rows = counts["values"], counts["goods"], counts["bads"], counts["rows"]
    present = np.array([v is not None for v in values], dtype=bool)
    total = int(rows.sum())
    missing = int(rows[~present].sum())
    order = np.argsort(-rows[present], kind="stable")
    names = values[present][order]
    g, b, n = goods[present][order], bads[present][order], rows[present][order]
    shown = min(len(names), TOP_CATEGORIES)
    labels = [str(v) for v in names[:shown]]
    bin_rows, bin_goods, bin_bads = list(n[:shown]), list(g[:shown]), list(b[:shown])
    if len(names) > shown:
        labels.append(f"{len(names) - shown} other categories")
        bin_rows.append(n[shown:].sum())
        bin_goods.append(g[shown:].sum())
        bin_bads.append(b[shown:].sum())
    if missing:
        labels.append(_MISSING)
        bin_rows.append(missing)
        bin_goods.append(goods[~present].sum())
        bin_bads.append(bads[~present].sum())
    table, iv = bin_table(labels, np.asarray(bin_rows), np.asarray(bin_goods), np.asarray(bin_bads))
    # Each row scored by its category's bad rate without the row itself (leave-one-out, shrunk
    # toward the overall rate by ten rows' worth), so a category of one row, or an identifier,
    # cannot look predictive: validation's out-of-fold rates, computed from the counts alone.
    known = goods + bads
    prior = bads.sum() / max(known.sum(), 1)
    bad_scores = (bads - 1 + 10 * prior) / (known - 1 + 10)
    good_scores = (bads + 10 * prior) / (known - 1 + 10)
    auc = scored_auc(
        np.concatenate([bad_scores, good_scores]),
        np.concatenate([np.zeros_like(goods), goods]),
        np.concatenate([bads, np.zeros_like(bads)]),
    )
    profile = FeatureProfile(
        name=column,
        kind="categorical",
        role="feature",
        rows=total,
        missing=missing,
        missing_rate=missing / total if total else 0.0,
        distinct=len(names),
        stats={},
        bins=table,
        information_value=iv,
        strength=None if iv is None else iv_strength(iv),
        auc=auc,
        leakage=False,
    )
    if reference is not None:
        profile.psi = categorical_psi(reference, values, rows)
    return profile


def _correlations(con: Any, numeric: list[str]) -> Correlations:
    """Pearson correlations of every pair of numeric features, in one scan of the data."""
    if len(numeric) < 2:
        return Correlations(features=list(numeric), matrix=[[1.0] for _ in numeric])
    pairs = [(i, j) for i in range(len(numeric)) for j in range(i + 1, len(numeric))]
    quoted = [quote_identifier(name) for name in numeric]
    terms = ", ".join(
        f"corr(CAST({quoted[i]} AS DOUBLE), CAST({quoted[j]} AS DOUBLE))" for i, j in pairs
    )
    found = con.execute(f"SELECT {terms} FROM data").fetchone()  # nosec B608
    matrix: list[list[float | None]] = [
        [1.0 if i == j else None for j in range(len(numeric))] for i in range(len(numeric))
    ]
    for (i, j), value in zip(pairs, found, strict=True):
        number = None if value is None or not math.isfinite(value) else float(value)
        matrix[i][j] = matrix[j][i] = number
    return Correlations(features=list(numeric), matrix=matrix)


def _warnings(profile: FeatureProfile) -> list[str]:
    found = []
    if profile.leakage and profile.auc is not None:
        found.append(leakage_message(profile.name, profile.auc))
    if profile.missing_rate > _HIGH_MISSING:
        found.append(f"{profile.name!r} is missing in {profile.missing_rate:.0%} of rows")
    if profile.distinct <= 1:
        found.append(f"{profile.name!r} takes a single value: it cannot tell applicants apart")
    if (
        profile.kind == "categorical"
        and profile.distinct > 50
        and (profile.distinct > 0.5 * (profile.rows - profile.missing))
    ):
        found.append(
            f"categorical column {profile.name!r} has {profile.distinct} distinct values for "
            f"{profile.rows} rows; is it an identifier?"
        )
    iv = profile.information_value
    if profile.role == "feature" and iv is not None and iv >= IV_BANDS[-2][0]:
        found.append(
            f"{profile.name!r} has an information value of {profile.information_value:.2f}: "
            "suspiciously predictive, check that it is known at application time"
        )
    return found


def render_profile_html(profile: DatasetProfile) -> str:
    """The profile as one self-contained HTML page (no script, no external file)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("creditops.data", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    return environment.get_template("profile.html.j2").render(p=profile)


__all__ = [
    "IV_BANDS",
    "PROFILE_SCHEMA_VERSION",
    "BinRow",
    "ClassBalance",
    "Correlations",
    "DatasetProfile",
    "FeatureProfile",
    "Histogram",
    "duckdb_connection",
    "is_number_type",
    "iv_strength",
    "load_file",
    "profile_file",
    "profile_frame",
    "quote_identifier",
    "render_profile_html",
]
