"""The decision log's hash chains: every logged decision carries its chain, its place in it, the
previous row's hash and its own, so a row edited, deleted, inserted or moved after the fact no
longer fits.

Each writer (one :class:`~creditops.store.predlog.PredictionLog` per process) starts a chain of
its own under a random id and keeps the chain's last ``(seq, hash)`` in memory: rows are
chained inside the group commit, in the order they are inserted, so several processes write
side by side (SQLite or PostgreSQL) with no shared counter and no extra query per decision.

A row's hash is SHA-256 over its values *as the database stores them* (the JSON columns' text
exactly as written, which both SQLite and PostgreSQL's ``json`` type keep verbatim; numbers as
``repr(float)`` / ``int``; times as ISO-8601 UTC with microseconds) and the previous hash: a
verifier reads the stored text back and hashes it again, without re-encoding anything, and a
writer whose JSON is already encoded (the bulk path) pays one hash per row.

The hash is not keyed: someone who can write to the database can recompute a whole chain. What
they cannot forge are the signed checkpoints (:mod:`creditops.store.checkpoints`), which fix
each chain's head at intervals; and a writer that is still running links its next row to the
head it holds in memory, not to what the database says.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from creditops.exceptions import RecordRejectedError
from creditops.store.database import JSONText, dumps_json

__all__ = [
    "CHAIN_COLUMNS",
    "CHAIN_FORMAT",
    "FORMATS",
    "GENESIS",
    "HASHED_COLUMNS",
    "JSON_COLUMNS",
    "ChainWriter",
    "row_digest",
    "stored_fields",
    "time_text",
]

#: The version of the serialisation below, recorded with each chain (``decision_chains.format``)
#: so a later column can join the hash for new chains while old chains verify as written.
#: 1: the decision; 2: and its sealed personal data (``pii``). New chains are written in 2.
CHAIN_FORMAT = 2
#: The previous hash of a chain's first row.
GENESIS = "0" * 64
#: The columns the chain adds to ``predictions``.
CHAIN_COLUMNS = ("chain", "seq", "prev_hash", "row_hash")
#: The stored columns a row's hash covers, in this order (format 2; format 1 stops before pii).
HASHED_COLUMNS = (
    "id",
    "chain",
    "seq",
    "created_at",
    "model_name",
    "model_version",
    "features",
    "protected",
    "imputed",
    "probability",
    "points",
    "grade",
    "decision",
    "reasons",
    "latency_ms",
    "actor",
    "pii",
)
#: JSON columns: hashed (and stored) as the text :func:`dumps_json` wrote.
JSON_COLUMNS = ("features", "protected", "imputed", "reasons")
_PREFIXES = {1: "creditops-chain-1", 2: "creditops-chain-2"}
#: The chain formats this version can verify.
FORMATS = frozenset(_PREFIXES)


def time_text(value: datetime) -> str:
    """A stored time as hashed: ISO-8601 in UTC with microseconds (what both backends keep)."""
    if value.tzinfo is not UTC:  # records and the stores already hold UTC: no conversion
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def row_digest(prev_hash: str, fields: Sequence[str], fmt: int = CHAIN_FORMAT) -> str | None:
    """SHA-256 (hex) of ``prev_hash`` and a row's field texts (:func:`stored_fields` in the
    same format), or None when a field holds a NUL character: the fields are joined by NULs, so
    a NUL inside one could shift a boundary and make two rows hash alike. None of what
    creditops stores holds one (JSON text escapes it, PostgreSQL refuses it in text, the writer
    refuses it)."""
    message = "\x00".join((_PREFIXES[fmt], prev_hash, *fields))
    if message.count("\x00") != len(fields) + 1:
        return None
    return hashlib.sha256(message.encode("utf-8", "surrogatepass")).hexdigest()


def stored_fields(row: Any, created_text: str | None = None, fmt: int = CHAIN_FORMAT) -> list[str]:
    """The texts a stored row is hashed over in format ``fmt``, from a mapping with every
    column of :data:`HASHED_COLUMNS` (the JSON columns as their stored text; format 1 needs no
    ``pii``). ``created_text``: the time already as :func:`time_text` (one batch shares one
    time)."""
    grade, actor = row["grade"], row["actor"]
    fields = [
        row["id"],
        row["chain"],
        str(int(row["seq"])),
        created_text if created_text is not None else time_text(row["created_at"]),
        row["model_name"],
        row["model_version"],
        row["features"],
        row["protected"],
        row["imputed"],
        repr(float(row["probability"])),
        str(int(row["points"])),
        "" if grade is None else grade,
        row["decision"],
        row["reasons"],
        repr(float(row["latency_ms"])),
        "" if actor is None else actor,
    ]
    # which of the nullable columns hold a value: NULL and "" hash apart
    flags = ("0" if grade is None else "1") + ("0" if actor is None else "1")
    if fmt == 1:
        return [*fields, flags]
    pii = row["pii"]
    return [*fields, "" if pii is None else pii, flags + ("0" if pii is None else "1")]


def writer_label() -> str:
    """Where a chain is written from, kept beside it (``host:pid``)."""
    try:
        host = socket.gethostname()
    except OSError:  # pragma: no cover - no host name
        host = "?"
    return f"{host}:{os.getpid()}"


class ChainWriter:
    """One writer's chain: its id and the last committed ``(seq, hash)``.

    :meth:`stamp` chains rows after the committed head without moving it; :meth:`advance`
    moves it once the rows are committed. A write that failed leaves the head where it was, so
    the same rows (or others) are chained again from there. Stamped by one thread at a time
    (the group commit's leader); ``last`` is one tuple, so another thread reads a consistent
    head (the checkpoint written when the log closes)."""

    __slots__ = ("chain_id", "last", "started_at", "writer")

    def __init__(self) -> None:
        self.chain_id = uuid.uuid4().hex
        self.last: tuple[int, str] = (0, GENESIS)
        self.started_at = datetime.now(UTC)
        self.writer = writer_label()

    @property
    def started(self) -> bool:
        """Whether rows of this chain were committed (and with the first, its registration)."""
        return self.last[0] > 0

    def registration(self) -> dict[str, Any]:
        """The chain's row in ``decision_chains``, written with its first rows."""
        return {
            "id": self.chain_id,
            "started_at": self.started_at,
            "format": CHAIN_FORMAT,
            "writer": self.writer,
        }

    def stamp(self, rows: list[dict[str, Any]]) -> tuple[int, str]:
        """Give each row its chain, seq, prev_hash and row_hash (format :data:`CHAIN_FORMAT`)
        after the committed head, in order; returns the ``(seq, hash)`` the head moves to once
        they are committed.

        JSON values not yet encoded are encoded here, as :class:`JSONText`, so the text hashed
        is the text stored; a missing nullable column is set to None, so every row of a batch
        has the same columns and what is hashed as NULL is stored as NULL."""
        seq, prev = self.last
        chain = self.chain_id
        encode, sha256, text = dumps_json, hashlib.sha256, JSONText
        prefix = _PREFIXES[CHAIN_FORMAT]
        last_time: Any = None
        last_text = ""
        try:
            for row in rows:
                seq += 1
                created = row["created_at"]
                if created is not last_time:
                    last_time, last_text = created, time_text(created)
                # stored_fields, unrolled: this runs once per logged decision
                features, protected = row["features"], row["protected"]
                imputed, reasons = row["imputed"], row["reasons"]
                if type(features) is not text:
                    features = row["features"] = text(encode(features))
                if type(protected) is not text:
                    protected = row["protected"] = text(encode(protected))
                if type(imputed) is not text:
                    imputed = row["imputed"] = text(encode(imputed))
                if type(reasons) is not text:
                    reasons = row["reasons"] = text(encode(reasons))
                grade, actor, pii = row.get("grade"), row.get("actor"), row.get("pii")
                if grade is None:
                    row["grade"] = None
                if actor is None:
                    row["actor"] = None
                if pii is None:
                    row["pii"] = None
                message = "\x00".join(
                    (
                        prefix,
                        prev,
                        row["id"],
                        chain,
                        str(seq),
                        last_text,
                        row["model_name"],
                        row["model_version"],
                        features,
                        protected,
                        imputed,
                        repr(float(row["probability"])),
                        str(int(row["points"])),
                        "" if grade is None else grade,
                        row["decision"],
                        reasons,
                        repr(float(row["latency_ms"])),
                        "" if actor is None else actor,
                        "" if pii is None else pii,
                        ("0" if grade is None else "1")
                        + ("0" if actor is None else "1")
                        + ("0" if pii is None else "1"),
                    )
                )
                if message.count("\x00") != 19:  # prefix, prev and 18 fields (format 2)
                    raise RecordRejectedError(
                        "prediction log refused the record: a text field holds a NUL character"
                    )
                row["chain"] = chain
                row["seq"] = seq
                row["prev_hash"] = prev
                prev = row["row_hash"] = sha256(
                    message.encode("utf-8", "surrogatepass")
                ).hexdigest()
        except (ValueError, TypeError) as exc:  # e.g. NaN, which is not JSON
            raise RecordRejectedError(f"prediction log refused the record: {exc}") from exc
        return seq, prev

    def advance(self, seq: int, head: str) -> None:
        """The rows up to ``seq`` are committed; the next one follows ``head``."""
        self.last = (seq, head)
