"""Batch results of the Decide page, kept for the session that made them.

A batch decided from an upload is written to ``CREDITOPS_HOME/ui-batches/<id>.parquet`` (the
decisions, exactly as downloaded) with a ``<id>.json`` beside it: the session that owns it
(a digest of its CSRF token, which no other session knows), when, from which file, and the
summary the page draws. Pages of the table and downloads read the Parquet file, so the server
never holds a result in memory between requests. Each session keeps its last
:data:`PER_SESSION` results, and results older than a session can live are deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from creditops.config import Settings
from creditops.data.io import write_table
from creditops.serving.batch import DecidedBatch

__all__ = [
    "PAGE_SIZE",
    "PER_SESSION",
    "BatchPage",
    "BatchResult",
    "batch_csv",
    "batch_parquet",
    "owner_of",
    "read_batch",
    "read_page",
    "save_batch",
]

PAGE_SIZE = 25
PER_SESSION = 3
_KEEP_AT_MOST = 60  # results of all sessions together
_BINS = 40  # of the probability-of-default histogram, over 0 to 1
_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_LOCK = threading.Lock()


@dataclass(frozen=True)
class BatchResult:
    """What the page shows of a batch besides its table."""

    id: str
    source: str
    created_at: str
    rows: int
    model_version: str
    logged: bool
    decisions: dict[str, int]
    mean_probability: float
    histogram: list[int]  # decisions per probability bin of width 1/_BINS
    columns: list[str]
    reason_texts: dict[str, str]  # the words of every reason code the batch cites

    @property
    def pages(self) -> int:
        return max(1, -(-self.rows // PAGE_SIZE))

    @property
    def bin_edges(self) -> list[float]:
        return [i / _BINS for i in range(_BINS + 1)]


@dataclass(frozen=True)
class BatchPage:
    result: BatchResult
    page: int
    rows: list[dict[str, Any]]

    @property
    def first(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1

    @property
    def reasons(self) -> dict[str, str]:
        """The reason codes cited on this page, with their words."""
        cited = {code for row in self.rows for code in str(row.get("reasons") or "").split(";")}
        return {c: t for c, t in self.result.reason_texts.items() if c in cited}


def owner_of(csrf: str) -> str:
    """The owner mark of a session's results: a digest of its CSRF token (secret to it)."""
    return hashlib.sha256(f"ui-batch:{csrf}".encode()).hexdigest()


def _folder(settings: Settings) -> Path:
    folder = settings.home / "ui-batches"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def save_batch(
    settings: Settings,
    owner: str,
    decided: DecidedBatch,
    *,
    source: str,
    model_version: str,
    logged: bool,
) -> BatchResult:
    """Keep ``decided`` for ``owner`` and return its summary; the owner's older results beyond
    :data:`PER_SESSION`, and anyone's past the session lifetime, are deleted."""
    folder = _folder(settings)
    frame = decided.frame
    batch_id = secrets.token_urlsafe(16)
    probabilities = frame["probability_of_default"].to_numpy(float)
    histogram, _ = np.histogram(probabilities, bins=_BINS, range=(0.0, 1.0))
    counts = frame["decision"].value_counts()
    result = BatchResult(
        id=batch_id,
        source=source[:200],
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        rows=len(frame),
        model_version=model_version,
        logged=logged,
        decisions={label: int(counts.get(label, 0)) for label in ("approve", "refer", "decline")},
        mean_probability=float(probabilities.mean()) if len(probabilities) else float("nan"),
        histogram=[int(n) for n in histogram],
        columns=[str(c) for c in frame.columns],
        reason_texts=decided.reason_texts,
    )
    write_table(frame, folder / f"{batch_id}.parquet", "parquet")
    meta = {"owner": owner, "saved": time.time(), "result": asdict(result)}
    temporary = folder / f".{batch_id}.json.tmp"
    temporary.write_text(json.dumps(meta))
    os.replace(temporary, folder / f"{batch_id}.json")  # present only once the table is
    _prune(folder, owner, settings.session_hours * 3600)
    return result


def _prune(folder: Path, owner: str, max_age_s: float) -> None:
    with _LOCK:
        kept: list[tuple[float, str, Path]] = []
        now = time.time()
        for path in folder.glob("*.json"):
            try:
                meta = json.loads(path.read_text())
                saved, who = float(meta["saved"]), str(meta["owner"])
            except (OSError, ValueError, KeyError, TypeError):
                saved, who = 0.0, ""
            if now - saved > max_age_s:
                _delete(path)
            else:
                kept.append((saved, who, path))
        kept.sort(reverse=True)
        mine = [path for _, who, path in kept if who == owner]
        for path in mine[PER_SESSION:]:
            _delete(path)
        for _, _, path in kept[_KEEP_AT_MOST:]:
            _delete(path)


def _delete(meta_path: Path) -> None:
    meta_path.unlink(missing_ok=True)
    meta_path.with_suffix(".parquet").unlink(missing_ok=True)


def _paths(settings: Settings, batch_id: str, owner: str) -> tuple[Path, dict[str, Any]] | None:
    if not _ID.fullmatch(batch_id):
        return None
    folder = settings.home / "ui-batches"
    try:
        meta = json.loads((folder / f"{batch_id}.json").read_text())
    except (OSError, ValueError):
        return None
    table = folder / f"{batch_id}.parquet"
    if meta.get("owner") != owner or not table.is_file():
        return None
    return table, meta


def read_batch(settings: Settings, batch_id: str, owner: str) -> BatchResult | None:
    """The summary of ``owner``'s batch ``batch_id``; None when it is gone or someone else's."""
    found = _paths(settings, batch_id, owner)
    return None if found is None else BatchResult(**found[1]["result"])


def read_page(settings: Settings, batch_id: str, owner: str, page: int) -> BatchPage | None:
    """One page of the decisions (clamped to the pages there are)."""
    found = _paths(settings, batch_id, owner)
    if found is None:
        return None
    table_path, meta = found
    result = BatchResult(**meta["result"])
    page = min(max(1, page), result.pages)
    table = pq.read_table(table_path, memory_map=True)
    rows = table.slice((page - 1) * PAGE_SIZE, PAGE_SIZE).to_pylist()
    return BatchPage(result=result, page=page, rows=rows)


def batch_parquet(settings: Settings, batch_id: str, owner: str) -> Path | None:
    found = _paths(settings, batch_id, owner)
    return None if found is None else found[0]


def batch_csv(settings: Settings, batch_id: str, owner: str) -> bytes | None:
    found = _paths(settings, batch_id, owner)
    if found is None:
        return None
    return pd.read_parquet(found[0]).to_csv(index=False).encode()
