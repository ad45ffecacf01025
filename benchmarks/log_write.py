"""Decision-log writes: SQLAlchemy's ``insert()`` executemany (the baseline) against the log's
bulk write (``creditops.store.database.bulk_insert``: PostgreSQL COPY, SQLite one executemany
of pre-processed rows), rows/s for batches of ``--chunk`` rows of credit_data's shape, on
SQLite and, when ``CREDITOPS_TEST_POSTGRES_URL`` names a server, PostgreSQL.

Usage: ``python benchmarks/log_write.py [--rows 100000] [--chunk 2000]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from creditops.store.database import bulk_insert, create_store_engine, normalise_url
from creditops.store.schema import ensure_schema, predictions


def _rows(n: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "id": str(uuid.uuid4()),
            "created_at": now,
            "model_name": "credit-default",
            "model_version": "1",
            "features": {
                "Seniority": i % 40,
                "Home": "owner",
                "Time": 60,
                "Age": 30 + i % 40,
                "Marital": "married",
                "Records": "no_rec",
                "Job": "fixed",
                "Expenses": 45,
                "Income": 120.5 + i % 7,
                "Assets": 3000.0,
                "Debt": 0.0,
                "Amount": 1000,
                "Price": 1500,
            },
            "protected": {"Age": 30 + i % 40},
            "imputed": [],
            "probability": (i % 997) / 997,
            "points": 600 - i % 97,
            "grade": "C",
            "decision": "refer" if i % 3 else "approve",
            "reasons": [
                {"code": "R03", "text": "Income is low", "feature": "Income", "contribution": 0.3}
            ]
            if i % 3
            else [],
            "latency_ms": 0.4,
        }
        for i in range(n)
    ]


def _measure(url: str, rows: list[dict[str, Any]], chunk: int, method: str) -> float:
    engine = create_store_engine(
        normalise_url(url, "the benchmark log", "decision"),
        timeout_s=30,
        busy_timeout_ms=5000,
        pool_size=1,
        max_overflow=0,
    )
    try:
        ensure_schema(engine, timeout_s=30)
        with engine.begin() as conn:
            conn.execute(predictions.delete())
        started = time.perf_counter()
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            with engine.begin() as conn:
                if method == "insert()":
                    conn.execute(predictions.insert(), part)
                else:
                    bulk_insert(conn, predictions, part)
        seconds = time.perf_counter() - started
        with engine.begin() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(predictions)).scalar()
            conn.execute(predictions.delete())
        assert stored == len(rows), (stored, len(rows))
        return len(rows) / seconds
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=2000)
    args = parser.parse_args()
    rows = _rows(args.rows)
    work = Path(tempfile.mkdtemp(prefix="creditops-logwrite-"))
    backends = {"SQLite": f"sqlite:///{work / 'predictions.db'}"}
    if os.environ.get("CREDITOPS_TEST_POSTGRES_URL"):
        backends["PostgreSQL"] = os.environ["CREDITOPS_TEST_POSTGRES_URL"]
    print(f"{args.rows:,} decisions in transactions of {args.chunk:,}")
    print("| backend | insert() rows/s | bulk rows/s | speed-up |")
    print("|---|---:|---:|---:|")
    for name, url in backends.items():
        baseline = _measure(url, rows, args.chunk, "insert()")
        bulk = _measure(url, rows, args.chunk, "bulk")
        print(f"| {name} | {baseline:,.0f} | {bulk:,.0f} | {bulk / baseline:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
