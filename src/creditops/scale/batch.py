"""Decisions on files of any size, a partition at a time (``creditops predict SOURCE --out DIR``),
in this process or on a Dask cluster, with the same result.

1. The source is a file, a directory (its ``.csv`` or ``.parquet`` files) or a glob, all of one
   format. Each file is read with ``dask.dataframe``: CSV in blocks of
   ``CREDITOPS_BATCH_PARTITION_BYTES`` as text (read as a CSV upload is), Parquet as typed.
   The partitions are numbered across the files, in order.
2. Every partition is validated first, by the rules of ``POST /predict/batch``. The first bad
   cell anywhere stops the run with its file, its row in that file (from 1) and its column:
   nothing is written and nothing is logged.
3. Each partition is then decided with the served version's fast path, its reasons included,
   and logged in transactions of ``CREDITOPS_MAX_BATCH`` rows (``--no-log``: not at all). Its
   decisions go to ``part-NNNNN.parquet`` in the output directory, written under a temporary
   name and renamed once its rows are logged.
4. A rerun after a crash resumes: a part whose file exists is skipped, and the prediction ids
   are fixed by the run (a UUID of the sources, the version, the partition and the row), so a
   chunk that was logged before the crash is found in the log and not logged twice. The output
   directory's ``_batch.json`` names its run; another run into it is refused.

The version is pinned when the run starts (the champion of that moment), so every partition is
decided by the same model even if the alias moves.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from creditops.config import Settings
from creditops.data.io import table_format, write_table
from creditops.exceptions import (
    BatchValidationError,
    ConfigurationError,
    DataValidationError,
    ModelNotFoundError,
)
from creditops.registry import CHAMPION, get_version
from creditops.scale.cluster import cluster_client
from creditops.serving.batch import (
    is_missing_cell,
    plain_value,
    split_inputs,
    text_rows,
    typed_rows,
    validate_applications,
)
from creditops.serving.bulk import column_rules, decide_records, table_is_valid, table_rows
from creditops.serving.schemas import personal_data, split_application
from creditops.serving.served import ServedModel
from creditops.serving.service import DecisionService
from creditops.store.predlog import PredictionLog

MANIFEST = "_batch.json"
_MANIFEST_VERSION = 1
_ROW_BITS = 62  # a UUIDv8's last field: the row's number in its file
_VERSION_8 = 8 << 76  # the version nibble (bits 76-79)
_VARIANT = 0b10 << 62  # RFC 9562's variant (bits 62-63)


class PartitionedSummary(BaseModel):
    """What one partitioned ``creditops predict`` did."""

    rows: int
    partitions: int
    partitions_skipped: int
    files: int
    model_name: str
    model_version: str
    decisions: dict[str, int]
    logged: bool
    output: str
    cluster: str | None
    validate_seconds: float
    decide_seconds: float
    total_seconds: float


@dataclass(frozen=True)
class _Partition:
    """Partition ``index`` of the run: partition ``number`` of ``file``."""

    index: int
    file: str
    number: int


@dataclass(frozen=True)
class _Model:
    """The registered model and version a run decides with."""

    name: str
    version: str


@dataclass(frozen=True)
class _Job:
    """What a worker needs to decide a partition: all plain, picklable values."""

    settings: Settings
    version: str
    fmt: str
    run_key: str
    output: str
    log: bool
    actor: str | None


def run_prediction_ids(run_key: str, file: str, first_row: int, n: int) -> list[uuid.UUID]:
    """The prediction ids of rows ``first_row`` to ``first_row + n - 1`` of ``file`` in the
    run ``run_key``: fixed by the run (a rerun finds them in the log), and in row order within
    a file. They are RFC 9562 version-8 UUIDs: 60 bits of a hash of the run and the file, then
    the row number, so one file's decisions go to one place of the log's primary-key index
    instead of random places, which cost a logged row about four times as much in a SQLite
    log of 840,000 decisions (measured: 40 µs against 10 µs per row)."""
    digest = hashlib.sha256(f"{run_key}/{file}".encode()).digest()
    prefix = int.from_bytes(digest[:8]) >> 4  # 60 bits
    high = ((prefix >> 12) << 80) | _VERSION_8 | ((prefix & 0xFFF) << 64) | _VARIANT
    if first_row + n > 1 << _ROW_BITS:
        raise ValueError(f"{file}: more rows than a prediction id can number")
    return [uuid.UUID(int=high | row) for row in range(first_row, first_row + n)]


def source_files(source: str) -> tuple[list[Path], str]:
    """The files a source names (a file, a directory's CSV / Parquet files, or a glob), sorted,
    and their one format; refused when there is none or the formats are mixed."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and table_format(p) is not None)
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(source) if Path(p).is_file())
    if not files:
        raise DataValidationError(f"{source}: no .csv or .parquet file there")
    # Absolute paths: the prediction ids derive from them, whatever directory a rerun starts in.
    files = [p.resolve() for p in files]
    formats = {table_format(p) for p in files}
    if None in formats:
        odd = next(p for p in files if table_format(p) is None)
        raise DataValidationError(f"{odd}: use .csv or .parquet files")
    if len(formats) > 1:
        raise DataValidationError(f"{source}: CSV and Parquet files mixed; use one format")
    return files, str(formats.pop())


def predict_partitioned(
    settings: Settings,
    source: str,
    output: Path,
    *,
    log: bool = True,
    ref: str = CHAMPION,
    cluster: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    actor: str | None = None,
) -> PartitionedSummary:
    """Decide every application under ``source`` into the directory ``output`` (module
    docstring); ``cluster``: an address from :func:`~creditops.scale.cluster_address`.
    ``progress(stage, done, total)`` is called as partitions finish; ``actor``: who runs it,
    recorded with each decision."""
    started = time.perf_counter()
    files, fmt = source_files(source)
    # Opened here first, so a log that is behind is upgraded once, before any worker writes.
    PredictionLog(settings.resolved_database_url).close()
    # The version is pinned here; each process that decides loads it (this one only when it
    # decides partitions itself).
    registered = get_version(settings, ref)
    if registered is None:
        raise ModelNotFoundError(
            f"no version {ref!r} of model {settings.registered_model_name!r} is registered; "
            "run `creditops train` first"
        )
    model = _Model(settings.registered_model_name, str(registered.version))
    run_key = _run_key(files, output, model, log, settings)
    job = _Job(settings, model.version, fmt, run_key, str(output), log, actor)
    partitions = _partitions(files, fmt, settings)
    manifest = _manifest(run_key, files, model, log, len(partitions))
    _check_output(output, run_key)
    try:
        with cluster_client(cluster) as client:
            checked, todo, validate_seconds, decide_seconds = _validate_and_decide(
                partitions, job, client, progress, started, manifest
            )
    finally:
        _release_here()
    # Every part's decisions, those written by an earlier, interrupted run included.
    counts: Counter[str] = Counter()
    for part in partitions:
        counts.update(_decisions_in(_part_path(output, part.index)))
    return PartitionedSummary(
        rows=sum(r["rows"] for r in checked),
        partitions=len(partitions),
        partitions_skipped=len(partitions) - len(todo),
        files=len(files),
        model_name=model.name,
        model_version=model.version,
        decisions=dict(counts),
        logged=log,
        output=str(output),
        cluster=cluster,
        validate_seconds=validate_seconds,
        decide_seconds=decide_seconds,
        total_seconds=time.perf_counter() - started,
    )


def _validate_and_decide(
    partitions: list[_Partition],
    job: _Job,
    client: Any,
    progress: Callable[[str, int, int], None] | None,
    started: float,
    manifest: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[_Partition], float, float]:
    """Every partition validated, then (nothing bad anywhere) the output claimed and each
    partition not yet written decided."""
    checked = _run(
        [_delayed(_validate_part, p, job) for p in partitions], client, progress, "validate"
    )
    validate_seconds = time.perf_counter() - started
    _raise_first_problem(partitions, checked)
    if not any(r["rows"] for r in checked):
        raise BatchValidationError("no rows to score in the files given")
    offsets = _row_offsets(partitions, checked)
    output = Path(job.output)
    if _files_identity(manifest["files"]) != manifest["identity"]:
        raise DataValidationError(
            "an input file changed while it was being validated: nothing decided; run again"
        )
    _write_manifest(output, manifest)
    todo = [p for p in partitions if not _part_path(output, p.index).exists()]
    decide_started = time.perf_counter()
    _run(
        [_delayed(_decide_part, p, job, offsets[p.index], checked[p.index]["rows"]) for p in todo],
        client,
        progress,
        "decide",
    )
    return checked, todo, validate_seconds, time.perf_counter() - decide_started


def _partitions(files: list[Path], fmt: str, settings: Settings) -> list[_Partition]:
    """Every partition of the files in order (each file opened to count them; each task reads
    its own)."""
    partitions: list[_Partition] = []
    for path in files:
        for number in range(_open(path, fmt, settings).npartitions):
            partitions.append(_Partition(len(partitions), str(path), number))
    return partitions


def _open(path: Path, fmt: str, settings: Settings) -> Any:
    import dask.dataframe as dd

    try:
        if fmt == "csv":
            return dd.read_csv(
                str(path),
                blocksize=settings.batch_partition_bytes,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                encoding="utf-8-sig",
            )
        return dd.read_parquet(str(path))
    except Exception as error:  # pandas and pyarrow raise many types for a broken file
        raise BatchValidationError(f"{path.name}: not a readable {fmt} file ({error})") from None


def _read_partition(part: _Partition, job: _Job) -> Any:
    """Partition ``part`` as a pandas frame, read here (in the task, on a worker with a
    cluster), so that a block that cannot be read is named by its file and place."""
    path = Path(part.file)
    frame = _open(path, job.fmt, job.settings)
    try:
        return frame.get_partition(part.number).compute(scheduler="synchronous")
    except Exception as error:  # a malformed line, a bad encoding, a truncated file
        where = f"partition {part.number + 1} of {frame.npartitions}"
        if job.fmt == "csv":
            size = job.settings.batch_partition_bytes
            where += f" (from byte {part.number * size:,})"
        first = next((line for line in str(error).splitlines() if line.strip()), "")
        raise BatchValidationError(
            f"{path.name}, {where}: cannot be read ({type(error).__name__}: {first[:300]})"
        ) from None


def _delayed(function: Callable[..., Any], part: _Partition, *args: Any) -> Any:
    """``function(part, *args)`` as a task (it reads its partition itself)."""
    import dask

    return dask.delayed(function, pure=False)(part, *args)


def _run(
    tasks: list[Any],
    client: Any,
    progress: Callable[[str, int, int], None] | None,
    stage: str,
) -> list[Any]:
    """Every task's result in order: on the cluster as they finish, else one at a time here
    (one partition in memory at once)."""
    total = len(tasks)
    if progress is not None:
        progress(stage, 0, total)
    if client is None:
        results = []
        for done, task in enumerate(tasks, start=1):
            results.append(task.compute(scheduler="synchronous"))
            if progress is not None:
                progress(stage, done, total)
        return results
    from distributed import as_completed

    futures = client.compute(tasks)
    order = {future.key: i for i, future in enumerate(futures)}
    results: list[Any] = [None] * total
    for done, (future, result) in enumerate(as_completed(futures, with_results=True), start=1):
        results[order[future.key]] = result
        if progress is not None:
            progress(stage, done, total)
    return results


# -- the work of one partition (on a worker, or here) --------------------------------------------


def _records(frame: Any, part: _Partition, job: _Job, served: ServedModel) -> _Rows:
    """The partition's validated features and protected attributes per row, and its ids:
    a typed table the column checks vouch for without a model per row, anything else
    validated row by row (which names the first bad cell)."""
    spec = served.spec
    inputs = frame.drop(columns=[c for c in (spec.id, spec.target) if c in frame])
    if job.fmt == "parquet" and table_is_valid(inputs, column_rules(served.application_model)):
        ids = None
        if spec.id is not None and spec.id in frame:
            ids = [None if is_missing_cell(v) else plain_value(v) for v in frame[spec.id]]
        table = table_rows(inputs, served)
        return _Rows(table.features, table.protected, ids, table.columns, table.pii)
    name = Path(part.file).name
    rows = text_rows(frame, spec, name) if job.fmt == "csv" else typed_rows(frame)
    rows, ids = split_inputs(rows, spec)
    if not rows:  # an empty file, or a block with no row: nothing to validate or decide
        return _Rows([], [], ids, None)
    applications = validate_applications(rows, served.application_model, name)
    parts = [split_application(a) for a in applications]
    pii = [personal_data(a) for a in applications] if spec.pii else None
    return _Rows([f for f, _, _ in parts], [p for _, p, _ in parts], ids, None, pii)


@dataclass(frozen=True)
class _Rows:
    features: list[dict[str, Any]]
    protected: list[dict[str, Any]]
    ids: list[Any] | None
    columns: dict[str, Any] | None
    pii: list[dict[str, str] | None] | None = None


def _validate_part(part: _Partition, job: _Job) -> dict[str, Any]:
    """The partition's row count, and its first problem (row within the partition, from 1;
    none for a block that cannot be read at all)."""
    try:
        frame = _read_partition(part, job)
    except BatchValidationError as error:
        return {"rows": 0, "problem": {"row": None, "column": None, "message": str(error)}}
    _, served = _worker_model(job)
    try:
        _records(frame, part, job, served)
    except BatchValidationError as error:
        first = error.problems[0] if error.problems else {"row": None, "column": None}
        return {"rows": len(frame), "problem": {**first, "message": str(error)}}
    return {"rows": len(frame), "problem": None}


def _decide_part(
    part: _Partition, job: _Job, first_row: int, validated_rows: int
) -> dict[str, Any]:
    """Decide, log and write one partition; returns its row count and decisions."""
    import pandas as pd

    frame = _read_partition(part, job)
    if len(frame) != validated_rows:  # the file changed since it was validated
        raise DataValidationError(
            f"{Path(part.file).name}: changed during the run ({validated_rows} rows validated, "
            f"{len(frame)} read now); the parts already written stand, run again to finish"
        )
    service, served = _worker_model(job)
    chunk = job.settings.max_batch
    decided_parts = []
    # A log chunk at a time, so a partition's per-row values are never all in memory at once.
    for start in range(0, max(len(frame), 1), chunk):
        rows = _records(frame.iloc[start : start + chunk], part, job, served)
        decided = decide_records(
            service,
            served,
            rows.features,
            rows.protected,
            prediction_ids=run_prediction_ids(
                job.run_key, part.file, first_row + start, len(rows.features)
            ),
            log=job.log,
            chunk=chunk,
            columns=rows.columns,
            actor=job.actor,
            pii=rows.pii,
        )
        if rows.ids is not None:
            decided.insert(0, served.spec.id, rows.ids)
        decided_parts.append(decided)
    decided = pd.concat(decided_parts, ignore_index=True)
    # Written beside its name and renamed (write_table): a part exists whole or not at all.
    write_table(decided, _part_path(Path(job.output), part.index))
    return {"rows": len(decided), "decisions": dict(Counter(decided["decision"]))}


_WORKER_CACHE: dict[tuple[str, ...], tuple[DecisionService, ServedModel]] = {}


def _worker_model(job: _Job) -> tuple[DecisionService, ServedModel]:
    """This process's service and the run's version, loaded once per process."""
    settings = job.settings
    # Everything that changes what is loaded or how it explains: two runs in one worker with
    # other stores, another registered model or another TreeSHAP setting never share one.
    key = (
        str(settings.resolved_database_url),
        settings.resolved_tracking_uri,
        str(settings.registry_uri),
        settings.registered_model_name,
        settings.tree_shap,
        job.version,
        # the personal-data key seals what is logged: another key, another service
        None if settings.pii_key is None else hash(settings.pii_key.get_secret_value()),
        settings.pii_key_file,
    )
    cached = _WORKER_CACHE.get(key)
    if cached is None:
        service = DecisionService(job.settings, PredictionLog.from_settings(job.settings))
        cached = (service, service.load(job.version))
        _WORKER_CACHE[key] = cached
    return cached


def _release_here() -> None:
    """Close the decision logs this process opened for partitions it decided itself."""
    while _WORKER_CACHE:
        _, (service, _) = _WORKER_CACHE.popitem()
        service.log.close()


# -- the run as a whole -------------------------------------------------------------------------


def _decisions_in(part: Path) -> Counter[str]:
    import pandas as pd

    return Counter(pd.read_parquet(part, columns=["decision"])["decision"])


def _part_path(output: Path, index: int) -> Path:
    return output / f"part-{index:05d}.parquet"


def _run_key(files: list[Path], output: Path, model: _Model, log: bool, settings: Settings) -> str:
    """What identifies a run: its files (path, size, modification time), its output directory,
    the version, and whether it logs; the prediction ids derive from it, so only a rerun into
    the same directory finds its own decisions in the log."""
    identity = {
        "files": _files_identity([str(p) for p in files]),
        "output": str(output.resolve()),
        "model": [model.name, model.version],
        "log": log,
        # Partitions and log chunks must fall where they fell, or a resumed run would find
        # other rows under the same part names and chunk ids.
        "partition_bytes": settings.batch_partition_bytes,
        "chunk_rows": settings.max_batch,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _manifest(
    run_key: str, files: list[Path], model: _Model, log: bool, parts: int
) -> dict[str, Any]:
    return {
        "manifest_version": _MANIFEST_VERSION,
        "run_key": run_key,
        "model_name": model.name,
        "model_version": model.version,
        "logged": log,
        "files": [str(p) for p in files],
        "identity": _files_identity([str(p) for p in files]),
        "partitions": parts,
    }


def _files_identity(files: list[str]) -> list[list[Any]]:
    """Each file's size and modification time, to notice a file that changes mid-run."""
    return [[f, Path(f).stat().st_size, Path(f).stat().st_mtime_ns] for f in files]


def _check_output(output: Path, run_key: str) -> None:
    """The output is new, empty, or this run's own (a rerun resumes it); nothing else."""
    if not output.exists():
        return
    if not output.is_dir():
        raise DataValidationError(f"{output}: the output of a partitioned run is a directory")
    manifest = output / MANIFEST
    if manifest.exists():
        try:
            existing = json.loads(manifest.read_text())
        except (OSError, ValueError):
            existing = {}
        if existing.get("run_key") != run_key:
            raise ConfigurationError(
                f"{output} holds the decisions of another run (other files, another version or "
                "another --log choice): write to an empty directory"
            )
    elif any(not p.name.startswith(f".{MANIFEST}.") for p in output.iterdir()):
        raise ConfigurationError(
            f"{output} is not empty: write a partitioned run to a new directory"
        )


def _write_manifest(output: Path, body: dict[str, Any]) -> None:
    """Claim ``output`` for this run: the manifest is written whole beside its name and linked
    into place, which fails if it exists, so of two runs started into one directory at once
    exactly one claims it; the other is refused unless it is the same run."""
    output.mkdir(parents=True, exist_ok=True)
    manifest = output / MANIFEST
    temporary = output / f".{MANIFEST}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    temporary.write_text(json.dumps(body, indent=2) + "\n")
    try:
        os.link(temporary, manifest)
    except FileExistsError:
        _check_output(output, body["run_key"])  # claimed meanwhile: only this run may go on
    finally:
        temporary.unlink(missing_ok=True)


def _raise_first_problem(partitions: list[_Partition], checked: list[dict[str, Any]]) -> None:
    offsets = _row_offsets(partitions, checked)
    for part, result in zip(partitions, checked, strict=True):
        problem = result["problem"]
        if problem is None:
            continue
        name = Path(part.file).name
        if problem.get("row") is None:  # the file or block as a whole
            text = problem["message"]
            text = text if text.startswith(f"{name}") else f"{name}: {text}"
            if "nothing decided" not in text:
                text += "; nothing decided, nothing logged"
            raise BatchValidationError(text, [problem])
        row = offsets[part.index] + problem["row"]
        column = problem.get("column")
        located = {"file": part.file, "row": row, "column": column, "problem": problem["problem"]}
        raise BatchValidationError(
            f"{name}, row {row}"
            + (f", column {column}" if column else "")
            + f": {problem['problem']}; nothing decided, nothing logged",
            [located],
        )


def _row_offsets(partitions: list[_Partition], checked: list[dict[str, Any]]) -> dict[int, int]:
    """Rows of the same file before each partition."""
    offsets: dict[int, int] = {}
    seen: Counter[str] = Counter()
    for part, result in zip(partitions, checked, strict=True):
        offsets[part.index] = seen[part.file]
        seen[part.file] += result["rows"]
    return offsets
