"""What the decision-log chain tests share: a key, decisions, a filled chain, and the ways
someone with write access to the database would change it behind the log's back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from creditops.store.chain import row_digest, stored_fields
from creditops.store.chain_audit import VerifyReport, verify_log
from creditops.store.checkpoints import AuditKey
from creditops.store.database import JSONText, bulk_insert, dumps_json
from creditops.store.predlog import PredictionLog, PredictionRecord
from creditops.store.schema import predictions

KEY = AuditKey(b"creditops-test-audit-key-0123456789")
OTHER_KEY = AuditKey(b"someone-else-s-key-0123456789abcdef")
T0 = datetime(2026, 3, 1, 9, 30, 0, 250000, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def decision(i: int, created_at: datetime | None = None) -> PredictionRecord:
    return PredictionRecord(
        created_at=created_at or T0 + timedelta(seconds=i),
        model_name="credit-default",
        model_version="3",
        features={"Income": 100.0 + i / 3, "Home": "rent ünï", "Debt": None},
        protected={"Age": 30 + i},
        imputed=["Debt"],
        probability=(i % 90) / 100,
        points=600 + i,
        grade=None if i % 3 == 0 else "B",
        decision=("approve", "refer", "decline")[i % 3],
        reasons=[{"code": "R01", "feature": "Debt", "text": "Debt is high"}] if i % 2 else [],
        latency_ms=0.5 + i,
    )


def bulk_row(i: int) -> dict[str, Any]:
    """A row as serving.bulk hands it to write_rows: JSON already encoded."""
    return {
        "id": str(uuid.uuid4()),
        "created_at": T0 + timedelta(seconds=i),
        "model_name": "credit-default",
        "model_version": "3",
        "features": JSONText(dumps_json({"Income": 0.1 + 0.2, "Home": "own"})),
        "protected": JSONText(dumps_json({"Age": 52})),
        "imputed": JSONText("[]"),
        "probability": 0.7,
        "points": 540,
        "grade": "D",
        "decision": "decline",
        "reasons": JSONText(dumps_json([{"code": "R02", "text": "Income is low"}])),
        "latency_ms": 2.0,
        "actor": "batch-key",
    }


def open_log(url: str, **options: Any) -> PredictionLog:
    options = {"audit_key": KEY, "checkpoint_rows": 1000, "checkpoint_seconds": 3600, **options}
    return PredictionLog(url, **options)


def fill(url: str, n: int = 12) -> tuple[str, list[str]]:
    """A closed chain of ``n`` decisions written every way the log writes (one at a time, a
    batch of records, bulk rows); returns the chain and its ids in seq order."""
    with open_log(url) as log:
        for i in range(4):
            log.write(decision(i))
        log.write_many([decision(i) for i in range(4, 8)])
        log.write_rows([bulk_row(i) for i in range(8, n)])
        chain = log.chain_id
    return chain, [row["id"] for row in chain_rows(url, chain)]


def engine(url: str) -> sa.Engine:
    return sa.create_engine(make_url(url), json_serializer=dumps_json)


def execute(url: str, sql: str, **params: Any) -> None:
    """Change the database behind the log's back, as someone with write access would."""
    db = engine(url)
    try:
        with db.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        db.dispose()


def chain_rows(url: str, chain: str) -> list[dict[str, Any]]:
    """The chain's stored rows, JSON as its text, in seq order."""
    c = predictions.c
    columns = [
        sa.cast(col, sa.Text).label(col.name) if isinstance(col.type, sa.JSON) else col
        for col in predictions.columns
    ]
    db = engine(url)
    try:
        with db.connect() as conn:
            stmt = sa.select(*columns).where(c.chain == chain).order_by(c.seq)
            return [dict(row) for row in conn.execute(stmt).mappings()]
    finally:
        db.dispose()


def forge(url: str, chain: str, seq: int, prev_hash: str) -> str:
    """Insert a made-up decision at ``seq`` whose hash is right for ``prev_hash`` (the chain's
    algorithm is no secret); returns its id."""
    row: dict[str, Any] = {
        **bulk_row(99),
        "decision": "approve",
        "probability": 0.01,
        "chain": chain,
        "seq": seq,
        "prev_hash": prev_hash,
        "pii": None,
    }
    row["row_hash"] = row_digest(prev_hash, stored_fields(row))
    db = engine(url)
    try:
        with db.begin() as conn:
            bulk_insert(conn, predictions, [row])
    finally:
        db.dispose()
    return row["id"]


def shift(url: str, chain: str, first: int, by: int) -> None:
    """Renumber the chain's rows from ``first`` on (through a free range: seq is unique)."""
    execute(url, "UPDATE predictions SET seq = seq + 1000000 WHERE chain = :c AND seq >= :f",
            c=chain, f=first)  # fmt: skip
    execute(url, "UPDATE predictions SET seq = seq - 1000000 + :by WHERE chain = :c "
            "AND seq >= 1000000", c=chain, by=by)  # fmt: skip


def set_json(url: str, prediction_id: str, column: str, text: str) -> None:
    cast = "CAST(:t AS json)" if url.startswith("postgresql") else ":t"
    execute(
        url, f"UPDATE predictions SET {column} = {cast} WHERE id = :id", t=text, id=prediction_id
    )


def verify(url: str, key: AuditKey | None = KEY, **options: Any) -> VerifyReport:
    with PredictionLog(url, audit_key=None) as log:
        return verify_log(log, key, **options)


def only_break(report: VerifyReport) -> Any:
    assert not report.ok
    assert len(report.breaks) == 1, report.breaks
    return report.breaks[0]
