"""The schema under Alembic, on real databases: SQLite files in tmp_path, and PostgreSQL when
``CREDITOPS_TEST_POSTGRES_URL`` names a server (each test then gets its own schema; under
``CI=true`` the PostgreSQL cases run and fail without it).

A database as the release before migrations left it (tests/store/fixtures: the DDL its stores
emitted at commit 52db52b) is filled with rows, upgraded, and read back unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from creditops.cli import app
from creditops.config import reset_settings
from creditops.exceptions import SchemaError
from creditops.store.alerts import AlertStore
from creditops.store.audit import AuditLog
from creditops.store.predlog import PredictionLog
from creditops.store.schema import (
    _BASELINE,  # the columns of revision 0001: what a database of that release holds
    database_status,
    ensure_schema,
    head_revision,
    metadata,
    upgrade_database,
)

FIXTURES = Path(__file__).parent / "fixtures"
#: Every revision, oldest first: what upgrading an empty (or pre-migration) database applies.
REVISIONS = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009"]
LEGACY_TABLES = ("predictions", "outcomes", "alerts", "monitor_runs", "retraining_audit")
T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)

runner = CliRunner()


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


def _engine(url: str) -> sa.Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed)


def create_legacy_database(url: str, tables: tuple[str, ...] = LEGACY_TABLES) -> None:
    """The tables named, exactly as creditops created them at 52db52b (no alembic_version)."""
    engine = _engine(url)
    dialect = engine.dialect.name
    text = (FIXTURES / f"schema_52db52b.{dialect}.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    statements = [s.strip() for s in body.split(";") if s.strip()]
    try:
        with engine.begin() as conn:
            for statement in statements:
                words = statement.split()
                name = words[2] if words[1] == "TABLE" else words[words.index("ON") + 1]
                if name in tables:
                    conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _rows(n: int) -> dict[str, list[dict[str, Any]]]:
    ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]
    return {
        "predictions": [
            {
                "id": ids[i],
                "created_at": T0 + timedelta(seconds=i),
                "model_name": "credit-default",
                "model_version": str(1 + i % 2),
                "features": {"Income": 100.0 + i, "Home": "rent", "Debt": None},
                "protected": {"Age": 30 + i},
                "imputed": ["Debt"] if i % 2 else [],
                "probability": 0.1 + i / 100,
                "points": 600 + i,
                "grade": "B" if i % 3 else None,
                "decision": ("approve", "refer", "decline")[i % 3],
                "reasons": [{"feature": "Debt", "text": "Debt is high"}],
                "latency_ms": 0.5 + i,
            }
            for i in range(n)
        ],
        "outcomes": [
            {
                "prediction_id": ids[i],
                "outcome": i % 2,
                "observed_at": None if i % 3 == 0 else T0 + timedelta(days=30),
                "recorded_at": T0 + timedelta(days=31, seconds=i),
            }
            for i in range(0, n, 2)
        ],
        "alerts": [
            {
                "id": str(uuid.UUID(int=1000 + i)),
                "created_at": T0 + timedelta(minutes=i),
                "check_name": "data_drift",
                "level": ("info", "warning", "critical")[i % 3],
                "metric": "drift_share",
                "value": 0.25 * i if i % 2 else None,
                "threshold": 0.5,
                "message": f"drift share {i}",
                "model_name": "credit-default",
                "model_version": "1",
                "run_id": f"run-{i}",
                "details": {"drifted": ["Income"], "i": i},
            }
            for i in range(n)
        ],
        "monitor_runs": [
            {
                "id": f"run-{i}",
                "started_at": T0 + timedelta(hours=i),
                "finished_at": T0 + timedelta(hours=i, seconds=5),
                "model_name": "credit-default",
                "model_version": "1",
                "rows": 100 * i,
                "drift_level": "warning",
                "drift_share": 0.4,
                "prediction_psi": 0.12,
                "realised_roc_auc": None,
                "realised_auc_drop_relative": None,
                "estimated_roc_auc": 0.81,
                "level": "warning",
                "summary": {"checks": ["data_drift"], "i": i},
            }
            for i in range(n)
        ],
        "retraining_audit": [
            {
                "id": str(uuid.UUID(int=2000 + i)),
                "started_at": T0 + timedelta(days=i),
                "finished_at": T0 + timedelta(days=i, minutes=3),
                "action": "retrain",
                "outcome": "awaiting_approval",
                "champion_version": "1",
                "challenger_version": str(2 + i),
                "reasons": ["AUC dropped"],
                "gates": [
                    {
                        "name": "auc",
                        "passed": True,
                        "value": 0.8,
                        "threshold": 0.79,
                        "message": "AUC 0.8 >= 0.79",
                    }
                ],
                "message": "waiting for creditops promote",
                "details": {"labelled_rows": 500},
            }
            for i in range(n)
        ],
    }


def fill(url: str, n: int = 6) -> None:
    """Rows in every legacy table, written through the tables as the database holds them."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            for name, rows in _rows(n).items():
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                conn.execute(table.insert(), rows)
    finally:
        engine.dispose()


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every legacy table, in key order, as the database returns it."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            found = {}
            for name in LEGACY_TABLES:
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                key = next(iter(table.primary_key.columns))
                # The columns that release had: later revisions may add columns of their own.
                columns = [c for c in table.columns if c.name in _BASELINE[name]]
                query = sa.select(*columns).order_by(key)
                found[name] = [tuple(row) for row in conn.execute(query)]
            return found
    finally:
        engine.dispose()


def version_rows(url: str) -> list[str]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
    finally:
        engine.dispose()


def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, *args: str) -> dict[str, Any]:
    monkeypatch.setenv("CREDITOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CREDITOPS_DATABASE_URL", url)
    reset_settings()
    try:
        result = runner.invoke(app, ["db", *args, "--json"])
    finally:
        reset_settings()
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------------------------
# Upgrading the release before migrations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["library", "cli"])
def test_a_database_from_before_migrations_is_adopted_and_keeps_every_row(
    db_url: str, via: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    create_legacy_database(db_url)
    fill(db_url)
    before = snapshot(db_url)
    assert all(len(rows) >= 3 for rows in before.values())
    assert database_status(db_url).current is None

    if via == "library":
        status = upgrade_database(db_url).to_dict()
    else:
        status = cli(monkeypatch, tmp_path, db_url, "upgrade")
    assert status["adopted"] is True
    assert status["applied"] == REVISIONS
    assert status["current"] == status["head"] == head_revision()
    assert status["up_to_date"] is True

    assert snapshot(db_url) == before
    assert version_rows(db_url) == [head_revision()]
    engine = _engine(db_url)
    try:  # revision 0002 filled each outcome's decision time from its decision
        with engine.connect() as conn:
            wrong = conn.exec_driver_sql(
                "SELECT count(*) FROM outcomes o JOIN predictions p ON p.id = o.prediction_id "
                "WHERE o.decided_at IS NULL OR o.decided_at <> p.created_at"
            ).scalar_one()
            filled = conn.exec_driver_sql("SELECT count(*) FROM outcomes").scalar_one()
    finally:
        engine.dispose()
    assert filled >= 3
    assert wrong == 0
    current = cli(monkeypatch, tmp_path, db_url, "current")
    assert current["current"] == head_revision()
    assert current["up_to_date"] is True

    # The stores read the old rows as they were written.
    with PredictionLog(db_url) as log:
        assert log.count() == len(before["predictions"])
        first = log.get(uuid.UUID(int=1))
        assert first is not None
        assert first.created_at == T0
        assert first.features == {"Income": 100.0, "Home": "rent", "Debt": None}
        assert log.get_outcome(uuid.UUID(int=1)) == {
            "outcome": 0,
            "observed_at": None,
            "recorded_at": T0 + timedelta(days=31),
        }
    with AlertStore(db_url) as alerts:
        assert alerts.count() == len(before["alerts"])
        assert alerts.recent(1)[0].details == {"drifted": ["Income"], "i": 5}
        assert [run.id for run in alerts.runs()] == [f"run-{i}" for i in range(6)]
    with AuditLog(db_url) as audit:
        assert audit.recent(1)[0].gates[0].name == "auc"


def test_a_partial_database_from_before_migrations_gets_the_missing_tables(db_url: str) -> None:
    # At 52db52b each store made its own tables: a service that never ran the monitor had
    # only the decision log's.
    create_legacy_database(db_url, ("predictions", "outcomes"))
    engine = _engine(db_url)
    with engine.begin() as conn:
        predictions = sa.Table("predictions", sa.MetaData(), autoload_with=conn)
        conn.execute(predictions.insert(), _rows(1)["predictions"])
    engine.dispose()

    status = upgrade_database(db_url)
    assert status.adopted
    assert status.current == head_revision()
    with PredictionLog(db_url) as log, AlertStore(db_url) as alerts:
        assert log.count() == 1
        assert alerts.count() == 0


def test_a_foreign_table_is_not_adopted(db_url: str) -> None:
    engine = _engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE predictions (id INTEGER PRIMARY KEY, label TEXT)")
    engine.dispose()
    with pytest.raises(SchemaError, match="'predictions' is not creditops's"):
        upgrade_database(db_url)
    assert database_status(db_url).current is None


def test_a_database_from_a_newer_release_is_refused(db_url: str) -> None:
    upgrade_database(db_url)
    engine = _engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d'")
    engine.dispose()
    with pytest.raises(SchemaError, match="revision f00d, unknown to this creditops"):
        upgrade_database(db_url)


# ---------------------------------------------------------------------------------------------
# Fresh databases
# ---------------------------------------------------------------------------------------------


def test_the_migrations_build_exactly_the_schema_the_code_uses(db_url: str) -> None:
    # A table or column changed in schema.py without a revision shows up here.
    status = upgrade_database(db_url)
    assert status.applied == REVISIONS
    assert not status.adopted
    engine = _engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_every_store_upgrades_on_open_and_then_trusts_the_process_cache(db_url: str) -> None:
    with PredictionLog(db_url) as log:
        assert log.count() == 0
    assert version_rows(db_url) == [head_revision()]
    engine = _engine(db_url)
    try:
        assert ensure_schema(engine) is None  # seen at head in this process: no query
    finally:
        engine.dispose()
    assert upgrade_database(db_url).applied == []  # the command always looks


def test_db_current_creates_no_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    status = database_status(f"sqlite:///{path}")
    assert (status.current, status.up_to_date) == (None, False)
    assert not path.exists()


# Upgrades the database named on the command line once a line arrives on stdin, then prints
# its status as JSON.
CHILD = r"""
import json, sys
from creditops.store.schema import upgrade_database
sys.stdin.readline()
print(json.dumps(upgrade_database(sys.argv[1]).to_dict()), flush=True)
"""


def test_processes_upgrading_one_fresh_database_at_once_all_succeed(db_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, db_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    for child in children:  # all imported and waiting: start them together
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert all(r["current"] == head_revision() for r in results)
    assert sorted(rev for r in results for rev in r["applied"]) == REVISIONS
    assert version_rows(db_url) == [head_revision()]
