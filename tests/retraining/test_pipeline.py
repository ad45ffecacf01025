"""The retrain loop on a real MLflow store and a real SQLite decision log: a challenger is
trained on the champion's data plus the older labelled decisions, both models are scored on the
newest labelled decisions, the gates decide, and every step is audited in the table and in
MLflow; promotion, rollback, and a challenger spoiled by wrong labels that the AUC gate stops."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import brier_score_loss, roc_auc_score

from creditops.config import Settings
from creditops.exceptions import (
    AuditLogError,
    CreditOpsError,
    NotClearedError,
    RetrainInProgressError,
)
from creditops.registry import (
    get_version,
    load_model,
    load_version_data,
    promote,
    register_model,
    set_alias,
)
from creditops.retraining import (
    RetrainConfig,
    RetrainDecision,
    Trigger,
    promote_challenger,
    retrain,
    rollback,
)
from creditops.retraining import pipeline as pipeline_module
from creditops.store import locks
from creditops.store.audit import EXPERIMENT, AuditEntry, AuditLog, Gate
from creditops.store.predlog import PredictionLog, PredictionRecord
from helpers import NOW, log_labelled_decisions

POSTGRES_URL = os.environ.get("CREDITOPS_TEST_POSTGRES_URL")
FORCED = RetrainDecision(retrain=True, reasons=[Trigger(name="forced", message="forced")])
# One quick candidate keeps a retrain to seconds.
QUICK = {"models": ["logistic_regression"], "profile": "fast"}


@pytest.fixture
def store(trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    source, _ = trained
    home = tmp_path / "home"
    shutil.copytree(source.home, home)
    (home / "predictions.db").unlink(missing_ok=True)
    # Run from an empty directory: nothing may be written outside CREDITOPS_HOME.
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return Settings(home=home)


def _log_decisions(settings: Settings, *, older: int, newest: int, flip_older: bool = False):
    """Labelled decisions, one an hour up to NOW: ``older`` rows drawn from the champion's
    training split, then the ``newest`` from its test split (rows it never saw), with the real
    Status as outcome (``flip_older``: the older rows' outcomes inverted). Returns the newest
    rows as (features + protected frame, outcomes)."""
    loaded = load_model(settings)
    spec = loaded.spec
    data = load_version_data(settings, loaded)
    frame = data.frame
    train_rows = frame.iloc[data.split.train].sample(older, random_state=1)
    test_rows = frame.iloc[data.split.test].sample(newest, random_state=2)
    rows = pd.concat([train_rows, test_rows], ignore_index=True)
    outcomes = (rows[spec.target].astype(str) == str(spec.positive)).to_numpy(dtype=int, copy=True)
    if flip_older:
        outcomes[:older] = 1 - outcomes[:older]

    log_labelled_decisions(settings, rows, outcomes)
    return rows.iloc[older:].reset_index(drop=True), outcomes[older:]


def _mlflow_audit_runs(settings: Settings) -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=settings.resolved_tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    assert experiment.artifact_location == settings.artifacts_dir.as_uri()
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def test_retrain_registers_a_challenger_compares_it_and_waits_for_approval(store, tmp_path):
    holdout, y = _log_decisions(store, older=700, newest=300)
    result = retrain(store, RetrainConfig(**QUICK), FORCED, now=NOW)

    assert (result.labelled_rows, result.holdout_rows) == (1000, 300)
    original = load_version_data(store, load_model(store, "1")).frame
    assert result.training_rows == len(original) + 700
    assert result.challenger_version == "2"
    assert str(get_version(store, "challenger").version) == "2"
    assert str(get_version(store, "champion").version) == "1"  # never promoted by itself

    # The figures are those of both models on the newest 300 decisions, recomputed here.
    spec = load_model(store, "1").spec
    for role, version in (("champion", "1"), ("challenger", "2")):
        proba = load_model(store, version).model.predict_proba(holdout[spec.features])[:, 1]
        assert result.metrics[role]["roc_auc"] == pytest.approx(roc_auc_score(y, proba))
        assert result.metrics[role]["brier"] == pytest.approx(brier_score_loss(y, proba))
    gates = {g.name: g for g in result.gates}
    assert set(gates) == {
        "minimum_labelled_rows",
        "auc_not_worse",
        "calibration_not_worse",
        "fairness",
    }
    champion_auc = result.metrics["champion"]["roc_auc"]
    assert gates["auc_not_worse"].threshold == pytest.approx(champion_auc - 0.005)
    assert gates["auc_not_worse"].passed == (
        result.metrics["challenger"]["roc_auc"] >= champion_auc - 0.005
    )
    assert gates["minimum_labelled_rows"].value == 300
    assert gates["minimum_labelled_rows"].passed
    expected = "awaiting_approval" if all(g.passed for g in result.gates) else "rejected"
    assert result.outcome == expected

    # The challenger was trained on the champion's data plus the 700 older decisions.
    challenger = load_model(store, "2")
    assert len(load_version_data(store, challenger).frame) == len(original) + 700
    assert challenger.tags["retrain_of"] == "1"
    assert challenger.tags["retrain_outcome"] == expected
    assert json.loads(challenger.tags["retrain_gates"]) == {g.name: g.passed for g in result.gates}

    # Audited in the table and in MLflow, with artifacts under CREDITOPS_HOME only.
    with AuditLog.from_settings(store) as audit:
        entry = audit.recent(1)[0]
    assert (entry.action, entry.outcome, entry.challenger_version) == ("retrain", expected, "2")
    assert entry.id == result.audit_id
    assert entry.gates == result.gates
    assert entry.details["holdout_rows"] == 300
    runs = _mlflow_audit_runs(store)
    assert runs[-1].data.tags["audit_id"] == entry.id
    assert runs[-1].data.metrics["gate_auc_not_worse_passed"] == float(
        gates["auc_not_worse"].passed
    )
    assert list(store.artifacts_dir.rglob("audit.json"))
    assert not (tmp_path / "cwd" / "mlruns").exists()

    # Promotion follows the gates (or --force, recorded as such); rollback returns. Refusals
    # are audited as well.
    if expected == "rejected":
        with pytest.raises(NotClearedError, match="not cleared for promotion"):
            promote_challenger(store)
    promoted = promote_challenger(store, force=expected == "rejected")
    assert (promoted.action, promoted.outcome) == ("promote", "promoted")
    assert (promoted.champion_version, promoted.challenger_version) == ("1", "2")
    assert promoted.reasons == (["forced"] if expected == "rejected" else [])
    assert promoted.details == {"via": "cli", "reason": None}
    assert str(get_version(store, "champion").version) == "2"
    with pytest.raises(CreditOpsError, match="already the champion"):
        promote_challenger(store)

    back = rollback(store)
    assert back.outcome == "rolled_back"
    assert str(get_version(store, "champion").version) == "1"
    with AuditLog.from_settings(store) as audit:
        entries = audit.recent(10)
    trail = [(e.action, e.outcome) for e in entries]
    refused_first = [("promote", "refused")] if expected == "rejected" else []
    assert trail == [
        ("rollback", "rolled_back"),
        ("promote", "refused"),  # already the champion
        ("promote", "promoted"),
        *refused_first,
        ("retrain", expected),
    ]
    assert "already the champion" in entries[1].reasons[0]
    assert (entries[1].champion_version, entries[1].challenger_version) == ("2", "2")
    assert [r.data.tags["action"] for r in _mlflow_audit_runs(store)] == [
        a for a, _ in reversed(trail)
    ]


def test_auto_promote_moves_the_champion_when_the_gates_pass(store):
    _log_decisions(store, older=560, newest=240)
    # Tolerances wide enough that this challenger passes whatever its figures: the wiring of
    # auto-promotion is under test here; the gates' arithmetic has its own tests.
    config = RetrainConfig(
        **QUICK, auto_promote=True, auc_tolerance=1.0, calibration_tolerance=1.0, fairness="off"
    )
    result = retrain(store, config, FORCED, now=NOW)
    assert result.outcome == "promoted"
    assert [g.name for g in result.gates] == [
        "minimum_labelled_rows",
        "auc_not_worse",
        "calibration_not_worse",
    ]
    assert str(get_version(store, "champion").version) == result.challenger_version == "2"
    assert rollback(store).champion_version == "1"
    assert str(get_version(store, "champion").version) == "1"
    # the rolled-back version keeps its passed verdict but is no longer cleared, and a second
    # rollback has nowhere to go rather than bringing it back
    with pytest.raises(CreditOpsError, match="rolled back"):
        promote_challenger(store, version="2")
    with pytest.raises(CreditOpsError, match="no previous champion"):
        rollback(store)
    assert str(get_version(store, "champion").version) == "1"


def test_a_retrain_after_a_promoted_retrain_uses_only_decisions_it_has_not_learnt(store):
    _log_decisions(store, older=560, newest=240)
    config = RetrainConfig(
        **QUICK, auto_promote=True, auc_tolerance=1.0, calibration_tolerance=1.0, fairness="off"
    )
    first = retrain(store, config, FORCED, now=NOW)
    assert first.outcome == "promoted"
    learnt = first.training_rows - len(load_version_data(store, load_model(store, "1")).frame)
    assert learnt == first.labelled_rows - first.holdout_rows == 560
    # The new champion was trained on 560 logged decisions (their prediction_id is its id):
    # the next retrain leaves them out instead of training on them twice.
    second = retrain(store, config.model_copy(update={"min_labelled_rows": 50}), FORCED, now=NOW)
    assert second.outcome != "failed", second.message
    assert second.labelled_rows == 800 - 560
    assert second.training_rows == first.training_rows + second.labelled_rows - (
        second.holdout_rows
    )


def test_rollbacks_walk_back_through_the_champions_and_never_return_forward(store, trained):
    from creditops.registry import promote, register_model

    _, result = trained
    others = [c for c in result.candidates if not c.champion][:2]
    versions = [str(register_model(c.model_uri, store, alias=None)) for c in others]
    assert versions == ["2", "3"]
    promote(store, "2")
    promote(store, "3")
    assert rollback(store).champion_version == "2"
    assert rollback(store).champion_version == "1"
    with pytest.raises(CreditOpsError, match="no previous champion"):
        rollback(store)
    assert str(get_version(store, "champion").version) == "1"


def test_a_challenger_taught_wrong_labels_is_stopped_by_the_auc_gate(store):
    # 2,400 decisions whose outcomes were recorded inverted join the training data; the 600
    # newest (the 20% holdout) carry the truth. The spoiled challenger must lose on AUC and stay
    # a challenger, even with auto-promotion on.
    _log_decisions(store, older=2400, newest=600, flip_older=True)
    config = RetrainConfig(**QUICK, auto_promote=True, holdout_share=0.2)
    result = retrain(store, config, FORCED, now=NOW)
    assert result.holdout_rows == 600
    gates = {g.name: g for g in result.gates}
    assert result.outcome == "rejected"
    auc = gates["auc_not_worse"]
    assert not auc.passed
    assert auc.value == pytest.approx(result.metrics["challenger"]["roc_auc"])
    assert auc.threshold == pytest.approx(result.metrics["champion"]["roc_auc"] - 0.005)
    loss = result.metrics["champion"]["roc_auc"] - result.metrics["challenger"]["roc_auc"]
    assert loss > 0.015  # three times the tolerance: a clear loss, not a rounding
    assert "auc_not_worse" in result.message
    assert str(get_version(store, "champion").version) == "1"
    assert str(get_version(store, "challenger").version) == result.challenger_version
    with pytest.raises(CreditOpsError, match="not cleared for promotion"):
        promote_challenger(store)


def test_a_crash_after_registration_leaves_no_alias_and_names_the_orphan(store, monkeypatch):
    _log_decisions(store, older=560, newest=240)

    def broken(*_, **__):
        raise RuntimeError("holdout scoring failed")

    monkeypatch.setattr(pipeline_module, "evaluate_gates", broken)
    with pytest.raises(RuntimeError, match="holdout scoring failed"):
        retrain(store, RetrainConfig(**QUICK), FORCED, now=NOW)
    assert get_version(store, "challenger") is None
    assert str(get_version(store, "champion").version) == "1"
    with AuditLog.from_settings(store) as audit:
        entry = audit.recent(1)[0]
    assert entry.outcome == "failed"
    assert entry.challenger_version == "2"
    assert "version 2 was registered and holds no alias" in entry.message


def test_a_one_class_holdout_is_skipped_before_training(store, monkeypatch):
    loaded = load_model(store)
    records = [
        PredictionRecord(
            created_at=NOW - timedelta(minutes=i),
            model_name=loaded.name,
            model_version=loaded.version,
            features={f: None for f in loaded.spec.features},
            probability=0.1,
            points=600,
            decision="approve",
            latency_ms=1.0,
        )
        for i in range(700)
    ]
    with PredictionLog(store.resolved_database_url) as log:
        log.write_many(records)
        log.record_outcomes([(r.prediction_id, 0) for r in records])
    monkeypatch.setattr(pipeline_module, "train", lambda *_, **__: pytest.fail("trained"))
    result = retrain(store, RetrainConfig(**QUICK), FORCED, now=NOW)
    assert result.outcome == "skipped"
    assert "only one outcome" in result.message
    [gate] = result.gates
    assert (gate.name, gate.passed, gate.value, gate.threshold) == (
        "holdout_has_both_outcomes",
        False,
        1,
        2,
    )
    assert get_version(store, "2") is None


def test_promote_and_rollback_refuse_clearly_without_a_candidate(store):
    with pytest.raises(CreditOpsError, match="challenger"):
        promote_challenger(store)
    with pytest.raises(CreditOpsError, match="no previous champion"):
        rollback(store)


def test_audit_times_are_stored_in_utc(tmp_path):
    paris = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert paris.hour == 14
    with AuditLog(f"sqlite:///{tmp_path / 'audit.db'}") as audit:
        audit.record(
            AuditEntry(
                started_at=paris,
                finished_at=paris + timedelta(seconds=3),
                action="rollback",
                outcome="rolled_back",
                message="m",
            )
        )
        entry = audit.recent(1)[0]
    assert entry.started_at == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert entry.started_at.utcoffset() == timedelta(0)


def test_the_audit_finds_a_retrain_behind_hundreds_of_newer_skipped_ones(tmp_path):
    with AuditLog(f"sqlite:///{tmp_path / 'audit.db'}") as audit:
        audit.record(
            AuditEntry(
                started_at=NOW - timedelta(days=30),
                action="retrain",
                outcome="awaiting_approval",
                challenger_version="7",
                message="trained",
            )
        )
        for i in range(300):  # a cron tick every few minutes with no trigger firing
            audit.record(
                AuditEntry(
                    started_at=NOW - timedelta(minutes=i),
                    action="retrain",
                    outcome="skipped",
                    message="not retrained",
                )
            )
        [last] = audit.recent(1, action="retrain", trained=True)
        [verdict] = audit.recent(1, action="retrain", challenger_version="7")
    assert last.challenger_version == verdict.challenger_version == "7"
    assert verdict.outcome == "awaiting_approval"


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not POSTGRES_URL:  # `make test` always starts one: its absence is a failure, never a skip
        pytest.fail("set CREDITOPS_TEST_POSTGRES_URL (`make test` starts a local PostgreSQL)")
    base = sa.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    schema = f"retrain_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def test_the_audit_log_works_on_postgresql(pg_url):
    # A bare postgresql:// URL must work too (psycopg 3 is the driver installed).
    bare = pg_url.replace("postgresql+psycopg://", "postgresql://")
    gate = Gate(name="fairness", passed=False, value=0.7, threshold=0.8, message="Age 0.70")
    with AuditLog(bare) as audit:
        first = audit.record(
            AuditEntry(
                started_at=NOW,
                action="retrain",
                outcome="rejected",
                challenger_version="2",
                gates=[gate],
                message="stopped",
                details={"metrics": {"champion": {"roc_auc": 0.8}}},
            )
        )
        audit.record(
            AuditEntry(
                started_at=NOW + timedelta(minutes=1),
                action="rollback",
                outcome="rolled_back",
                message="back",
            )
        )
        assert [e.action for e in audit.recent(5)] == ["rollback", "retrain"]
        (read,) = audit.recent(5, action="retrain")
    assert read == first


def test_retrains_on_different_hosts_exclude_each_other_through_postgresql(tmp_path, pg_url):
    # Two homes = two hosts: the lock files differ, the database is shared.
    settings = Settings(home=tmp_path / "host-b", database_url=pg_url)
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as other_host:
            key = {"key": locks.RETRAIN_LOCK_KEY}
            other_host.execute(sa.text("SELECT pg_advisory_lock(:key)"), key)
            with (
                pytest.raises(RetrainInProgressError, match="advisory lock"),
                locks.exclusive(settings, locks.RETRAIN_LOCK),
            ):
                pass
            other_host.execute(sa.text("SELECT pg_advisory_unlock(:key)"), key)
            other_host.commit()
        with locks.exclusive(settings, locks.RETRAIN_LOCK), engine.connect() as probe:
            taken = probe.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), key)
            assert taken.scalar_one() is False
    finally:
        engine.dispose()


def test_decide_reads_the_current_champions_runs_and_the_last_retrain(store):
    from creditops.retraining import decide_retrain
    from creditops.store.alerts import AlertStore, MonitorRun

    now = datetime.now(UTC)

    def run(version: str, hours_ago: float, share: float) -> MonitorRun:
        started = now - timedelta(hours=hours_ago)
        return MonitorRun(
            id=f"{version}-{hours_ago}",
            started_at=started,
            finished_at=started + timedelta(seconds=1),
            model_version=version,
            rows=500,
            drift_level="warning",
            drift_share=share,
            level="warning",
        )

    config = RetrainConfig(schedule_days=None)
    with AlertStore.from_settings(store) as alerts:
        # The latest run judged a replaced champion (version 0): it says nothing about this one.
        alerts.save_run(run("1", 2, 0.20))
        alerts.save_run(run("0", 1, 0.90))
    assert decide_retrain(store, config).reasons == []
    with AlertStore.from_settings(store) as alerts:
        alerts.save_run(run("1", 0.5, 0.50))
    decision = decide_retrain(store, config)
    assert [r.name for r in decision.reasons] == ["features_drifted"]
    assert decision.reasons[0].value == pytest.approx(0.50)

    # A retrain that trained a challenger three hours ago holds the drift trigger back.
    with AuditLog.from_settings(store) as audit:
        audit.record(
            AuditEntry(
                started_at=now - timedelta(hours=3),
                action="retrain",
                outcome="rejected",
                champion_version="1",
                challenger_version="2",
                message="failed auc_not_worse",
            )
        )
    held = decide_retrain(store, config)
    assert held.retrain is False
    assert "features_drifted held back" in held.notes[0]
    assert decide_retrain(store, config, force=True).retrain is True


def test_log_frames_without_their_column_map_are_refused_not_read_as_missing():
    # Without the map, every feature would silently read as missing and be imputed.
    frame = pd.DataFrame({"prediction_id": ["a"], "outcome": [1], "feature.Income": [40.0]})
    with pytest.raises(CreditOpsError, match="lost their column map 'feature_columns'"):
        pipeline_module._logged_columns(frame)
    frame.attrs.update(feature_columns={"Income": "feature.Income"}, protected_columns={})
    kept = frame.sort_values("prediction_id").reset_index(drop=True).iloc[:1].copy()
    assert pipeline_module._logged_columns(kept) == ({"Income": "feature.Income"}, {})


def _second_version(store: Settings) -> str:
    """Version 1's model registered again, as version 2 (no retrain made it)."""
    return register_model(get_version(store, "1").source, store, alias=None)


def test_a_rollback_to_the_version_already_champion_is_refused_not_recorded_as_done(store):
    promote(store, _second_version(store))  # the history now returns to 1
    set_alias(store, "champion", "1")  # moved back outside creditops (e.g. the MLflow UI)
    with pytest.raises(CreditOpsError, match="already the champion"):
        rollback(store)
    assert str(get_version(store, "champion").version) == "1"
    with AuditLog.from_settings(store) as audit:
        [entry] = audit.recent(5)
    assert (entry.action, entry.outcome, entry.challenger_version) == ("rollback", "refused", "1")
    # Version 1 was not rolled back from, so it is not barred from promotion.
    assert not get_version(store, "1").tags.get("rollback_outcome")


def test_promote_resolves_an_alias_to_its_version(store):
    version = _second_version(store)
    set_alias(store, "challenger", version)
    entry = promote_challenger(store, version="challenger", force=True)
    assert (entry.champion_version, entry.challenger_version) == ("1", version)
    assert str(get_version(store, "champion").version) == version


def test_a_promotion_whose_audit_cannot_be_written_still_reports_the_change(store, monkeypatch):
    version = _second_version(store)

    def unwritable(*_: object) -> None:
        raise AuditLogError("the retraining audit is read-only")

    monkeypatch.setattr(pipeline_module, "record_everywhere", unwritable)
    entry = promote_challenger(store, version=version, force=True)
    assert str(get_version(store, "champion").version) == version  # the change happened
    assert entry.outcome == "promoted"
    assert entry.details["audit_error"] == "the retraining audit is read-only"


def test_promotions_queue_for_the_champion_lock_and_give_up_after_its_wait(store):
    short = dataclasses.replace(locks.CHAMPION_LOCK, wait_s=0.3)
    with (
        locks.exclusive(store, short),
        pytest.raises(CreditOpsError, match="another promotion or rollback is under way"),
        locks.exclusive(store, short),
    ):
        pass
    # Held by another thread for half a second: a holder with a longer wait gets it after.
    order: list[str] = []
    holding = threading.Event()

    def hold() -> None:
        with locks.exclusive(store, short):
            holding.set()
            time.sleep(0.5)
            order.append("released")

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    with locks.exclusive(store, dataclasses.replace(short, wait_s=30)):
        order.append("acquired")
    thread.join()
    assert order == ["released", "acquired"]


def test_a_rollback_with_nothing_registered_is_refused_in_a_sentence(settings):
    with pytest.raises(CreditOpsError, match="no previous champion"):
        rollback(settings)
