"""Reading user data files (CSV or Parquet) with errors a person can act on, and writing
tables out so a file appears complete or not at all."""

from __future__ import annotations

import csv
import io
import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Literal

import pandas as pd

from creditops.exceptions import DatasetNotFoundError, DataValidationError

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")
_OTHER_DELIMITERS = (";", "\t", "|")


def table_format(path: Path) -> Literal["csv", "parquet"] | None:
    """The format a file name asks for (.csv, .parquet or .pq), or None."""
    suffix = path.suffix.lower()
    return "parquet" if suffix in (".parquet", ".pq") else "csv" if suffix == ".csv" else None


def write_table(
    frame: pd.DataFrame, path: str | Path, fmt: Literal["csv", "parquet"] | None = None
) -> Path:
    """Write ``frame`` to ``path`` as CSV or Parquet (``fmt``, else from the suffix), beside it
    first and then renamed over it, so a reader never sees half a file."""
    path = Path(path)
    fmt = fmt or table_format(path)
    if fmt not in ("csv", "parquet"):
        raise DataValidationError(f"{path.name}: write a .csv or .parquet file")
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if fmt == "csv":
            frame.to_csv(temporary, index=False)
        else:
            frame.to_parquet(temporary, index=False)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_table(path: str | Path, *, delimiter: str = ",", encoding: str = "utf-8") -> pd.DataFrame:
    """Read a CSV or Parquet file, refusing files that would silently parse wrong."""
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(f"data file not found: {path}")
    if not path.is_file():
        raise DataValidationError(f"{path} is not a file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataValidationError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; use .csv or .parquet"
        )
    if path.stat().st_size == 0:
        raise DataValidationError(f"{path.name} is empty")
    frame = (
        _read_parquet(path)
        if suffix in (".parquet", ".pq")
        else _read_csv(path, delimiter, encoding)
    )
    if frame.empty:
        raise DataValidationError(f"{path.name} has a header but no rows")
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as exc:
        raise DataValidationError(f"{path.name} is not a readable Parquet file: {exc}") from exc
    _refuse_duplicates(names, path)
    return pd.read_parquet(path)


def _read_csv(path: Path, delimiter: str, encoding: str) -> pd.DataFrame:
    try:
        with path.open(encoding=encoding, newline="") as handle:
            header_line = handle.readline()
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            f"{path.name} is not valid {encoding}: byte {exc.object[exc.start]:#04x} at "
            f"position {exc.start}; save it as UTF-8 or pass the right --encoding"
        ) from exc
    if not header_line.strip():
        raise DataValidationError(f"{path.name} has an empty first line; expected a header")
    header = next(csv.reader(io.StringIO(header_line), delimiter=delimiter))
    if len(header) == 1:
        for other in _OTHER_DELIMITERS:
            if other != delimiter and other in header_line:
                shown = "\\t" if other == "\t" else other
                raise DataValidationError(
                    f"{path.name}: the header has one column but contains {shown!r}; the file "
                    f"looks {shown!r}-delimited, pass --delimiter {shown!r}"
                )
    _refuse_duplicates([name.strip() for name in header], path)
    try:
        frame = pd.read_csv(path, sep=delimiter, encoding=encoding, skipinitialspace=True)
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            f"{path.name} is not valid {encoding} after the header: {exc.reason} at byte "
            f"{exc.start}; save it as UTF-8 or pass the right --encoding"
        ) from exc
    except pd.errors.ParserError as exc:
        raise DataValidationError(f"{path.name} could not be parsed as CSV: {exc}") from exc
    frame.columns = [str(column).strip() for column in frame.columns]
    return frame


def _refuse_duplicates(names: list[str], path: Path) -> None:
    duplicated = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicated:
        raise DataValidationError(
            f"{path.name}: duplicated column name(s) in the header: {', '.join(duplicated)}",
            column=duplicated[0],
        )
    blank = [i for i, name in enumerate(names) if not str(name).strip()]
    if blank:
        raise DataValidationError(f"{path.name}: column {blank[0] + 1} of the header has no name")
