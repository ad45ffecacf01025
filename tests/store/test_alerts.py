"""The alert store and the records it keeps, on real databases: SQLite files in tmp_path, and
PostgreSQL when ``CREDITOPS_TEST_POSTGRES_URL`` names a server (each test in its own schema)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from creditops.config import Settings
from creditops.exceptions import AlertStoreError, ConfigurationError
from creditops.store.alerts import Alert, AlertStore
from creditops.store.predlog import PredictionLog, PredictionRecord
from helpers import make_alert

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def store(db_url: str) -> Iterator[AlertStore]:
    with AlertStore(db_url) as opened:
        yield opened


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[AlertStore]:
    with AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}") as opened:
        yield opened


# ---------------------------------------------------------------------------------------------
# The alert
# ---------------------------------------------------------------------------------------------


def test_alert_to_dict_is_plain_json_with_utc_time() -> None:
    alert = make_alert(
        created_at=datetime(2025, 6, 1, 11, 0, tzinfo=UTC),
        value=np.float64(0.75),
        details={"share": np.float32(0.5), "missing": float("nan"), "counts": np.arange(3)},
    )
    data = alert.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["created_at"] == "2025-06-01T11:00:00Z"
    assert data["id"] == str(alert.id)
    assert data["value"] == 0.75
    assert type(data["value"]) is float
    assert data["details"] == {"share": 0.5, "missing": None, "counts": [0, 1, 2]}
    assert alert.severity == 2


def test_alert_converts_times_to_utc_and_unknown_values_to_none() -> None:
    from datetime import timezone

    paris = timezone(timedelta(hours=2))
    alert = make_alert(created_at=datetime(2025, 6, 1, 11, 0, tzinfo=paris), value=float("nan"))
    assert alert.created_at == datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
    assert alert.created_at.utcoffset() == timedelta(0)
    assert alert.value is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"created_at": datetime(2025, 6, 1, 9, 0)},  # naive: ambiguous
        {"level": "error"},
        {"check": "Data Drift"},
        {"message": ""},
        {"details": {"model": object()}},
    ],
)
def test_alert_refuses_invalid_fields(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_alert(**overrides)


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


def test_store_round_trips_alerts_newest_first(store: AlertStore) -> None:
    alerts = [
        make_alert(created_at=T0 + timedelta(minutes=i), value=0.1 * i, run_id=f"run-{i}")
        for i in range(5)
    ]
    assert store.save(alerts) == 5
    got = store.recent()
    assert [a.to_dict() for a in got] == [a.to_dict() for a in reversed(alerts)]
    assert got[0].created_at.tzinfo is not None
    assert store.count() == 5
    assert store.save([]) == 0


def test_store_filters_by_level_check_since_and_run(store: AlertStore) -> None:
    rows = [
        make_alert(created_at=T0, check="data_drift", level="warning", run_id="r1"),
        make_alert(created_at=T0 + timedelta(hours=1), check="fairness", level="critical"),
        make_alert(created_at=T0 + timedelta(hours=2), check="data_drift", level="critical"),
        make_alert(created_at=T0 + timedelta(hours=3), check="performance", level="info"),
    ]
    store.save(rows)

    def ids(alerts: list[Alert]) -> list[uuid.UUID]:
        return [a.id for a in alerts]

    assert ids(store.recent(level="critical")) == [rows[2].id, rows[1].id]
    assert ids(store.recent(level=["warning", "info"])) == [rows[3].id, rows[0].id]
    assert ids(store.recent(check="data_drift")) == [rows[2].id, rows[0].id]
    assert ids(store.recent(check=["fairness", "performance"])) == [rows[3].id, rows[1].id]
    assert ids(store.recent(since=T0 + timedelta(hours=1))) == [r.id for r in rows[:0:-1]]
    assert ids(store.recent(level="critical", check="data_drift")) == [rows[2].id]
    assert ids(store.recent(run_id="r1")) == [rows[0].id]
    assert ids(store.recent(limit=2)) == [rows[3].id, rows[2].id]
    assert store.recent(limit=0) == []
    with pytest.raises(ValueError, match="time zone"):
        store.recent(since=datetime(2025, 6, 1))
    with pytest.raises(ValueError, match="unknown level"):
        store.recent(level="fatal")  # type: ignore[arg-type]


def test_store_survives_reopening(db_url: str) -> None:
    alert = make_alert(details={"psi": 0.31, "bands": [0.1, 0.25]})
    with AlertStore(db_url) as first:
        first.save([alert])
    with AlertStore(db_url) as second:  # table exists: opened, not recreated
        assert [a.to_dict() for a in second.recent()] == [alert.to_dict()]


def test_save_is_all_or_nothing(store: AlertStore) -> None:
    first = make_alert()
    store.save([first])
    with pytest.raises(AlertStoreError):
        store.save([make_alert(), make_alert(id=first.id)])  # the second repeats a stored id
    assert store.count() == 1


def test_store_shares_the_decision_logs_database(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=None)
    with PredictionLog.from_settings(settings) as log, AlertStore.from_settings(settings) as store:
        assert store.url == settings.resolved_database_url
        log.write(
            PredictionRecord(
                model_name="credit-default",
                model_version="3",
                features={"Income": 120.0},
                probability=0.2,
                points=620,
                decision="approve",
                latency_ms=1.0,
            )
        )
        store.save([make_alert()])
        assert log.count() == 1
        assert store.count() == 1
    engine = sa.create_engine(settings.resolved_database_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
    finally:
        engine.dispose()
    assert {"predictions", "outcomes", "alerts"} <= tables
    assert journal == "wal"


def test_concurrent_saves_from_threads_all_land(sqlite_store: AlertStore) -> None:
    def work(n: int) -> None:
        for i in range(10):
            sqlite_store.save([make_alert(run_id=f"t{n}-{i}"), make_alert(run_id=f"t{n}-{i}")])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sqlite_store.count() == 80


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db"])
def test_store_refuses_databases_that_would_lose_alerts(url: str) -> None:
    with pytest.raises(ConfigurationError):
        AlertStore(url)


def test_closed_store_raises(sqlite_store: AlertStore) -> None:
    sqlite_store.close()
    with pytest.raises(AlertStoreError, match="closed"):
        sqlite_store.save([make_alert()])


# ---------------------------------------------------------------------------------------------
# Acknowledgements and reports
# ---------------------------------------------------------------------------------------------


def test_an_alert_keeps_its_first_acknowledgement(store: AlertStore) -> None:
    alert = make_alert()
    store.save([alert, make_alert(metric="psi")])
    acknowledged = store.acknowledge(str(alert.id), by="ana", note="  feed fixed  ")
    assert acknowledged.acknowledged_by == "ana"
    assert acknowledged.acknowledgement == "feed fixed"
    assert acknowledged.acknowledged_at is not None
    with pytest.raises(AlertStoreError, match="already acknowledged by ana"):
        store.acknowledge(str(alert.id), by="bo", note="me too")
    assert store.get(str(alert.id)).acknowledged_by == "ana"
    with pytest.raises(ValueError, match="needs a note"):
        store.acknowledge(str(alert.id), by="bo", note="   ")
    with pytest.raises(AlertStoreError, match="no alert"):
        store.acknowledge(str(uuid.uuid4()), by="bo", note="x")
    assert [a.metric for a in store.recent(acknowledged=False)] == ["psi"]
    assert [a.id for a in store.recent(acknowledged=True)] == [alert.id]
    assert [a.metric for a in store.recent(metric="ps")] == ["psi"]
    assert store.recent(metric="%") == []  # a wildcard is text, not a pattern


def test_the_latest_report_of_a_version_is_found(store: AlertStore) -> None:
    for run, version, hour in (("r1", "1", 1), ("r2", "2", 2), ("r3", "1", 3)):
        started = (T0 + timedelta(hours=hour)).isoformat()
        store.save_report(
            {"run_id": run, "started_at": started, "model_name": "m", "model_version": version}
        )
    assert store.latest_report()["run_id"] == "r3"
    assert store.latest_report(model_name="m", model_version="2")["run_id"] == "r2"
    assert store.latest_report(model_version="9") is None


def test_only_the_newest_reports_of_a_version_are_kept(store: AlertStore, db_url: str) -> None:
    from creditops.store.alerts import REPORTS_KEPT

    for i in range(REPORTS_KEPT + 3):
        started = (T0 + timedelta(hours=i)).isoformat()
        store.save_report(
            {"run_id": f"r{i}", "started_at": started, "model_name": "m", "model_version": "1"}
        )
    store.save_report(
        {"run_id": "other", "started_at": T0.isoformat(), "model_name": "m", "model_version": "2"}
    )
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT run_id FROM monitor_reports")).scalars().all()
    engine.dispose()
    assert len(kept) == REPORTS_KEPT + 1
    assert {"r0", "r1", "r2"}.isdisjoint(kept)
    assert "other" in kept
