"""Retention on real databases: ``purge`` removes decisions older than the period (a prefix of
each chain, with their outcomes), signs the cut, and leaves a log that still verifies, in
which tampering is still found; periods under six months, a missing key and a broken log are
refused. And on PostgreSQL, the service's own role may insert into the decision log and read
it, never change or remove it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from typer.testing import CliRunner

from chain_helpers import KEY, chain_rows, decision, execute, only_break, open_log, verify
from creditops.cli import app
from creditops.config import reset_settings
from creditops.exceptions import ChainError, PredictionLogError
from creditops.store.chain_audit import sign_chains
from creditops.store.predlog import PredictionLog
from creditops.store.retention import cutoff, purge_decisions
from creditops.store.schema import upgrade_database
from helpers import DATABASES, POSTGRES_URL, database_url

NOW = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)
runner = CliRunner()


def months_ago(n: int, days: int = 0) -> datetime:
    """``n`` calendar months before NOW, then ``days`` later."""
    return (cutoff(f"{n}m", NOW, force=True) if n else NOW) + timedelta(days=days)


def fill_months(url: str) -> tuple[list[str], list[list[str]]]:
    """Two chains, one decision a month from 30 months ago to now in each, and an outcome for
    every other one; returns the chains and their ids in seq order."""
    chains, ids = [], []
    for writer in range(2):
        with open_log(url) as log:
            for month in range(30, -1, -1):
                record = decision(month, created_at=months_ago(month, days=writer))
                log.write(record)
                if month % 2 == 0:
                    log.record_outcome(record.prediction_id, month % 4 == 0)
            chains.append(log.chain_id)
        ids.append([row["id"] for row in chain_rows(url, log.chain_id)])
    return chains, ids


def counts(url: str) -> tuple[int, int]:
    with PredictionLog(url, audit_key=None) as log:

        def work(conn: Any) -> tuple[int, int]:
            decisions = conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar_one()
            outcomes = conn.exec_driver_sql("SELECT count(*) FROM outcomes").scalar_one()
            return int(decisions), int(outcomes)

        return log.read(work)


# ---------------------------------------------------------------------------------------------
# Purge
# ---------------------------------------------------------------------------------------------


def test_periods_and_the_six_month_minimum() -> None:
    assert cutoff("25m", NOW) == datetime(2025, 5, 15, 12, 0, tzinfo=UTC)
    assert cutoff("2y", NOW) == datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
    assert cutoff("6m", NOW) == datetime(2026, 12, 15, 12, 0, tzinfo=UTC)
    assert cutoff("1m", datetime(2027, 3, 31, tzinfo=UTC), force=True) == datetime(
        2027, 2, 28, tzinfo=UTC
    )
    for short in ("90d", "5m", "12w"):
        with pytest.raises(ValueError, match="EU AI Act"):
            cutoff(short, NOW)
    assert cutoff("90d", NOW, force=True) == NOW - timedelta(days=90)
    with pytest.raises(ValueError, match="give a period"):
        cutoff("25 months", NOW)


def test_a_purge_leaves_a_log_that_verifies_and_still_shows_tampering(db_url: str) -> None:
    chains, ids = fill_months(db_url)
    assert verify(db_url).ok
    assert counts(db_url) == (62, 32)
    with PredictionLog(db_url, audit_key=None) as log:
        result = purge_decisions(log, KEY, "25m", now=NOW)
    # months 30..26 are older than 25 months in both chains (month 25 is the cut-off)
    assert (result.decisions, result.chains) == (10, 2)
    assert result.outcomes == 6  # months 30, 28, 26 in each chain
    assert result.checkpoint is not None
    assert counts(db_url) == (52, 26)
    for chain, chain_ids in zip(chains, ids, strict=True):
        kept = chain_rows(db_url, chain)
        assert [row["id"] for row in kept] == chain_ids[5:]
        assert kept[0]["seq"] == 6
    report = verify(db_url)
    assert report.ok, report.breaks
    assert report.rows == 52
    assert verify(db_url, key=None).ok  # the anchors, read unsigned, still start each chain

    # nothing more is old enough: nothing deleted, nothing signed
    with PredictionLog(db_url, audit_key=None) as log:
        again = purge_decisions(log, KEY, "25m", now=NOW)
    assert (again.decisions, again.checkpoint) == (0, None)

    # deleting the oldest row left, as a purge would, is not a purge: it is found
    execute(db_url, "DELETE FROM outcomes WHERE prediction_id = :id", id=ids[0][5])
    execute(db_url, "DELETE FROM predictions WHERE id = :id", id=ids[0][5])
    found = only_break(verify(db_url))
    assert (found.kind, found.chain, found.seq) == ("deleted", chains[0], 7)


def test_an_edit_after_a_purge_is_found(db_url: str) -> None:
    chains, ids = fill_months(db_url)
    with PredictionLog(db_url, audit_key=None) as log:
        purge_decisions(log, KEY, "2y", now=NOW)
    assert verify(db_url).ok
    execute(db_url, "UPDATE predictions SET points = 900 WHERE id = :id", id=ids[1][10])
    found = only_break(verify(db_url))
    assert (found.kind, found.chain, found.prediction_id) == ("edited", chains[1], ids[1][10])


def test_a_chain_is_cut_at_its_first_row_young_enough(db_url: str) -> None:
    # A thread that decided later may commit earlier: the purge takes the prefix of rows all
    # older than the cut-off, never a row from after it.
    times = [months_ago(40), months_ago(1), months_ago(39), months_ago(38)]
    with open_log(db_url) as log:
        for i, moment in enumerate(times):
            log.write(decision(i, created_at=moment))
        chain = log.chain_id
    with PredictionLog(db_url, audit_key=None) as log:
        result = purge_decisions(log, KEY, "25m", now=NOW)
    assert result.decisions == 1
    assert [row["seq"] for row in chain_rows(db_url, chain)] == [2, 3, 4]
    assert verify(db_url).ok


def test_a_purge_refuses_without_the_key_or_on_a_broken_log(db_url: str) -> None:
    _, ids = fill_months(db_url)
    with PredictionLog(db_url, audit_key=None) as log:
        with pytest.raises(ChainError, match="needs the audit key"):
            purge_decisions(log, None, "25m", now=NOW)
        with pytest.raises(ValueError, match="shorter than 6 months"):
            purge_decisions(log, KEY, "30d", now=NOW)
    execute(db_url, "UPDATE predictions SET points = 1 WHERE id = :id", id=ids[0][2])
    with (
        PredictionLog(db_url, audit_key=None) as log,
        pytest.raises(ChainError, match=r"does not verify.*edited"),
    ):
        purge_decisions(log, KEY, "25m", now=NOW)
    assert counts(db_url) == (62, 32)  # the evidence stays


def test_purge_command(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_log(db_url) as log:
        log.write(decision(1, created_at=datetime.now(UTC) - timedelta(days=800)))
        log.write(decision(2))
    monkeypatch.setenv("CREDITOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CREDITOPS_DATABASE_URL", db_url)
    monkeypatch.setenv("CREDITOPS_AUDIT_KEY", "creditops-test-audit-key-0123456789")
    reset_settings()
    try:
        refused = runner.invoke(app, ["predictions", "purge", "--older-than", "90d"])
        assert refused.exit_code == 2
        assert "EU AI Act" in refused.output
        done = runner.invoke(app, ["predictions", "purge", "--older-than", "25m"])
        assert done.exit_code == 0, done.output
        assert "1 decision(s) and 0 outcome(s)" in done.stdout
        checked = runner.invoke(app, ["audit", "verify"])
        assert checked.exit_code == 0, checked.output
        assert checked.stdout.startswith("OK: 1 decision(s) in 1 chain(s)")
    finally:
        reset_settings()


# ---------------------------------------------------------------------------------------------
# The service's role on PostgreSQL
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [name for name in DATABASES if name == "postgres"])
def test_the_service_role_may_only_insert_into_and_read_the_decision_log(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert POSTGRES_URL is not None
    role, password = f"svc_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    admin = sa.create_engine(make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        with database_url(backend, tmp_path) as owner_url:
            # The owner migrates, naming the service's role (as `creditops db upgrade` does
            # with CREDITOPS_DATABASE_SERVICE_ROLE set).
            monkeypatch.setenv("CREDITOPS_DATABASE_SERVICE_ROLE", role)
            upgrade_database(owner_url)
            service_url = make_url(owner_url).set(username=role, password=password)
            _the_service_works(service_url)
            _but_cannot_change_the_log(service_url)
            assert verify(owner_url).ok
            with PredictionLog(owner_url, audit_key=None) as log:
                assert sign_chains(log, KEY).heads  # the owner signs what the service wrote
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


def _the_service_works(url: Any) -> None:
    with PredictionLog(url, audit_key=KEY) as log:
        record = decision(1)
        log.write(record)
        log.write_many([decision(2), decision(3)])
        assert log.get(record.prediction_id) == record
        assert log.record_outcome(record.prediction_id, 1) == "recorded"
        assert log.record_outcome(record.prediction_id, 1) == "unchanged"
        assert log.is_writable() == (True, "ok")
    # its checkpoints were written too (start and close)
    assert verify(url.render_as_string(hide_password=False)).ok


def _but_cannot_change_the_log(url: Any) -> None:
    engine = sa.create_engine(url)
    try:
        for statement in (
            "UPDATE predictions SET points = 1",
            "DELETE FROM predictions",
            "TRUNCATE predictions CASCADE",
            "UPDATE decision_checkpoints SET mac = 'x'",
            "DELETE FROM decision_checkpoints",
            "DELETE FROM decision_chains",
        ):
            with pytest.raises(ProgrammingError, match="permission denied"), engine.begin() as c:
                c.exec_driver_sql(statement)
        with engine.begin() as conn:  # outcomes keep what they need
            assert conn.exec_driver_sql("UPDATE outcomes SET outcome = 0").rowcount == 1
        with PredictionLog(url, audit_key=None) as log, pytest.raises(PredictionLogError):
            purge_decisions(log, KEY, "1m", now=NOW + timedelta(days=3650), force=True)
    finally:
        engine.dispose()
