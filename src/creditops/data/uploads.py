"""Files users upload (from the dashboard), and a first guess at their dataset spec.

An upload is streamed to ``CREDITOPS_HOME/uploads`` while it is hashed, and refused as soon as
it passes the size cap, so a huge file never fills memory or the disk; the content's SHA-256
names its folder, so uploading the same bytes again finds the file already there (and its spec,
saved next to it). Only CSV and Parquet are taken.

:func:`infer_spec` reads the file's columns (DuckDB, as the profile does) and guesses what a
spec needs: the target (a two-valued column named like an outcome), its positive value (the
word for default, or the rarer value), an id column (unique integers named like an id), the
protected attributes (columns named like age, sex, marital status, race…) and each feature's
type. The user corrects the guess; nothing is trained on a guess unchecked.

The SQL here is assembled from column names quoted by ``quote_identifier`` and fixed fragments;
every value is a bound parameter (hence the ``nosec B608`` marks for bandit).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from creditops.data.profile import (
    duckdb_connection,
    is_number_type,
    load_file,
    quote_identifier,
)
from creditops.data.spec import ID_NAME, DatasetSpec, FeatureTypes
from creditops.exceptions import DataValidationError

ALLOWED_SUFFIXES = (".csv", ".parquet")
SPEC_FILE = "spec.yaml"
_TARGET_NAME = re.compile(
    r"^(status|target|default|defaulted|bad|label|class|outcome|y|loan_status|delinquent|"
    r"serious_?dlqin2yrs|default_payment.*|is_?bad|charged_?off)$",
    re.IGNORECASE,
)
_POSITIVE_WORDS = ("bad", "default", "defaulted", "yes", "1", "true", "charged off", "deny")
_PROTECTED_NAME = re.compile(
    r"^(age|sex|gender|marital|marital_?status|race|ethnicity|religion|nationality|"
    r"national_?origin|foreign_?worker|disability)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Upload:
    """A stored upload: where it is, its content hash and size, and whether the same bytes
    were already there."""

    path: Path
    sha256: str
    size: int
    reused: bool

    @property
    def spec_path(self) -> Path:
        return self.path.parent / SPEC_FILE


def safe_filename(name: str) -> str:
    """The file's own name without any folder, reduced to letters, digits, dot, dash and
    underscore (an uploaded name is never trusted as a path)."""
    base = Path(name.replace("\\", "/")).name
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "upload"
    return cleaned[:120]


def store_upload(
    chunks: Iterable[bytes], filename: str, uploads_dir: Path, *, max_bytes: int
) -> Upload:
    """Stream ``chunks`` into ``uploads_dir/<sha256 prefix>/<filename>``; DataValidationError
    for a file type other than CSV / Parquet, an empty file, or one past ``max_bytes`` (nothing
    is left behind)."""
    name = safe_filename(filename)
    suffix = Path(name).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise DataValidationError(
            f"{name}: upload a .csv or .parquet file (not {suffix or 'a file without extension'})"
        )
    uploads_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    handle, temporary = tempfile.mkstemp(dir=uploads_dir, prefix=".incoming-")
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise DataValidationError(
                        f"{name} is larger than the upload limit of {max_bytes:,} bytes"
                    )
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise DataValidationError(f"{name} is empty")
        sha = digest.hexdigest()
        folder = uploads_dir / sha[:16]
        existing = (
            sorted(p for p in folder.iterdir() if p.suffix.lower() == suffix)
            if folder.is_dir()
            else []
        )
        if existing:
            return Upload(path=existing[0], sha256=sha, size=size, reused=True)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        os.replace(temporary, target)
        return Upload(path=target, sha256=sha, size=size, reused=False)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def infer_spec(path: Path) -> DatasetSpec:
    """A first guess at ``path``'s spec (module docstring); DataValidationError when no column
    looks like a two-valued outcome."""
    with duckdb_connection() as con:
        load_file(con, path)
        types = {row[0]: str(row[1]) for row in con.execute("DESCRIBE data").fetchall()}
        rows = int(con.execute("SELECT count(*) FROM data").fetchone()[0])
        counts = con.execute(
            "SELECT "  # nosec B608
            + ", ".join(f"count(DISTINCT {quote_identifier(name)})" for name in types)
            + " FROM data"
        ).fetchone()
        distinct = {name: int(n) for name, n in zip(types, counts, strict=True)}
        target = _guess_target(types, distinct)
        if target is None:
            raise DataValidationError(
                f"{path.name}: no column looks like a two-valued outcome; name the target in "
                "the spec"
            )
        column = quote_identifier(target)
        values = [
            str(v[0]).strip()
            for v in con.execute(
                f"SELECT {column}, count(*) AS n FROM data WHERE {column} IS NOT NULL "  # nosec B608
                "GROUP BY 1 ORDER BY n"
            ).fetchall()
        ]
    positive = next((v for v in values if v.lower() in _POSITIVE_WORDS), values[0])
    id_column = next(
        (
            name
            for name, kind in types.items()
            if name != target
            and is_number_type(kind)
            and not kind.startswith(("DOUBLE", "FLOAT", "DECIMAL"))
            and distinct[name] == rows
            and ID_NAME.search(name)
        ),
        None,
    )
    protected = [n for n in types if n not in (target, id_column) and _PROTECTED_NAME.match(n)]
    features = [n for n in types if n not in (target, id_column, *protected)]
    numeric = [n for n in features if is_number_type(types[n])]
    label: str | int = int(positive) if positive.lstrip("-").isdigit() else positive
    return DatasetSpec(
        target=target,
        positive=label,
        protected=protected,
        id=id_column,
        features=FeatureTypes(
            numeric=numeric, categorical=[n for n in features if n not in set(numeric)]
        ),
    )


@dataclass(frozen=True)
class FileSummary:
    """A file's rows, its columns as stored (name → "number" or "text"), and the values of the
    columns with few of them (the choices for a target's positive value)."""

    rows: int
    columns: dict[str, str]
    few_values: dict[str, list[str]]


def summarise_file(path: Path, *, few: int = 10) -> FileSummary:
    """One read of ``path`` (DuckDB): DataValidationError when it cannot be read."""
    with duckdb_connection() as con:
        load_file(con, path)
        types = {row[0]: str(row[1]) for row in con.execute("DESCRIBE data").fetchall()}
        rows = int(con.execute("SELECT count(*) FROM data").fetchone()[0])
        if not types:
            raise DataValidationError(f"{path.name} has no columns")
        counts = con.execute(
            "SELECT "  # nosec B608
            + ", ".join(f"count(DISTINCT {quote_identifier(name)})" for name in types)
            + " FROM data"
        ).fetchone()
        few_values = {}
        for name, n in zip(types, counts, strict=True):
            if 0 < int(n) <= few:
                column = quote_identifier(name)
                values = con.execute(
                    f"SELECT DISTINCT CAST({column} AS VARCHAR) FROM data "  # nosec B608
                    f"WHERE {column} IS NOT NULL ORDER BY 1"
                ).fetchall()
                few_values[name] = [str(v[0]) for v in values]
    columns = {n: "number" if is_number_type(k) else "text" for n, k in types.items()}
    return FileSummary(rows=rows, columns=columns, few_values=few_values)


def _guess_target(types: dict[str, str], distinct: dict[str, int]) -> str | None:
    two_valued = [name for name in types if distinct[name] == 2]
    named = [name for name in two_valued if _TARGET_NAME.match(name.strip())]
    if named:
        return named[0]
    return two_valued[-1] if two_valued else None  # outcomes often come last


@dataclass(frozen=True)
class StoredUpload:
    """An upload already stored: its ``key`` (the folder, named by its content hash)."""

    key: str
    path: Path
    size: int
    modified: datetime

    @property
    def spec_path(self) -> Path:
        return self.path.parent / SPEC_FILE

    @property
    def has_spec(self) -> bool:
        return self.spec_path.is_file()


_KEY = re.compile(r"^[0-9a-f]{16}$")


def _stored(folder: Path) -> StoredUpload | None:
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in ALLOWED_SUFFIXES
    )
    if not files:
        return None
    stat = files[0].stat()
    modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
    return StoredUpload(key=folder.name, path=files[0], size=stat.st_size, modified=modified)


def find_upload(uploads_dir: Path, key: str) -> StoredUpload:
    """The upload stored under ``key``; DataValidationError for a key that is not one."""
    folder = uploads_dir / key
    found = _stored(folder) if _KEY.fullmatch(key) and folder.is_dir() else None
    if found is None:
        raise DataValidationError(f"no upload {key!r}: upload the file again")
    return found


def list_uploads(uploads_dir: Path) -> list[StoredUpload]:
    """Every stored upload, the newest first."""
    if not uploads_dir.is_dir():
        return []
    found = [
        stored
        for folder in uploads_dir.iterdir()
        if folder.is_dir() and _KEY.fullmatch(folder.name) and (stored := _stored(folder))
    ]
    return sorted(found, key=lambda u: u.modified, reverse=True)


def save_spec(upload: StoredUpload, spec: DatasetSpec) -> Path:
    """Write ``spec`` as YAML next to the upload (replaced whole, never half-written)."""
    text = yaml.safe_dump(
        spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False, allow_unicode=True
    )
    handle, temporary = tempfile.mkstemp(dir=upload.path.parent, prefix=".spec-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, upload.spec_path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return upload.spec_path


def read_spec(upload: StoredUpload) -> DatasetSpec | None:
    """The spec saved with the upload, or None before one is saved."""
    return DatasetSpec.from_yaml(upload.spec_path) if upload.has_spec else None


__all__ = [
    "ALLOWED_SUFFIXES",
    "SPEC_FILE",
    "FileSummary",
    "StoredUpload",
    "Upload",
    "find_upload",
    "infer_spec",
    "list_uploads",
    "read_spec",
    "safe_filename",
    "save_spec",
    "store_upload",
    "summarise_file",
]
