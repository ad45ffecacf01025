"""The retraining audit trail: every retrain, promotion and rollback, with why, in the database
of the decision log (table ``retraining_audit``) and in MLflow (experiment
``creditops-retraining``: one run per entry, gates as metrics, the entry as JSON).

It is a durable record like the others, so it lives with the store; the retraining pipeline,
the CLI and the API write it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from creditops.config import Settings
from creditops.exceptions import AuditLogError
from creditops.store.schema import RecordStore, audit_table
from creditops.training.tracking import artifact_location, configure_tracking

__all__ = ["EXPERIMENT", "Action", "AuditEntry", "AuditLog", "Gate", "Outcome", "record_everywhere"]

#: The MLflow experiment that holds one run per audit entry.
EXPERIMENT = "creditops-retraining"

_T = TypeVar("_T")

Action = Literal["retrain", "promote", "rollback", "policy", "acknowledge", "canary"]
# "rejected": a retrain's challenger failed a gate; "refused": a promotion or rollback broke a
# rule and changed nothing.
Outcome = Literal[
    "promoted",
    "awaiting_approval",
    "rejected",
    "failed",
    "skipped",
    "rolled_back",
    "refused",
    "saved",  # a version's decision policy replaced (action "policy")
    "acknowledged",  # a person has seen a monitoring alert (action "acknowledge")
    "started",  # a canary began deciding a share of live traffic (action "canary")
    "halted",  # a canary was stopped, by its watch or by a person
    "resumed",  # a person let a halted canary decide again
]


class Gate(BaseModel):
    """One promotion gate: passed or not, with the figures it compared."""

    name: str
    passed: bool
    value: float | None = None
    threshold: float | None = None
    message: str


class AuditEntry(BaseModel):
    """One retrain, promotion or rollback: what was done, to which versions, and why."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    started_at: AwareDatetime
    finished_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    action: Action
    outcome: Outcome
    champion_version: str | None = None
    challenger_version: str | None = None
    reasons: list[str] = Field(default_factory=list)
    gates: list[Gate] = Field(default_factory=list)
    message: str
    details: dict[str, Any] = Field(default_factory=dict)

    @field_validator("started_at", "finished_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        # The table stores UTC either way (UTCDateTime); this keeps the entry the caller gets
        # back and MLflow's audit.json in UTC too, so all three read alike.
        return value.astimezone(UTC)


class AuditLog(RecordStore):
    """Append-only audit entries in ``url`` (SQLite or PostgreSQL), usually the decision log's
    database: written with the same engine settings, transactions and busy retries."""

    store = "retraining audit"
    holds = "audit entry"
    error = AuditLogError

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditLog:
        """The audit in the decision log's database (``settings.resolved_database_url``)."""
        settings.ensure_home()
        return cls(settings.resolved_database_url)

    def record(self, entry: AuditEntry) -> AuditEntry:
        """Append ``entry`` (committed before it returns); returns it."""
        row = entry.model_dump(mode="json")
        row["started_at"], row["finished_at"] = entry.started_at, entry.finished_at
        self._run(lambda conn: conn.execute(audit_table.insert(), [row]), write=True)
        return entry

    def recent(
        self,
        limit: int = 20,
        *,
        action: Action | None = None,
        outcome: Outcome | None = None,
        challenger_version: str | None = None,
        trained: bool = False,
    ) -> list[AuditEntry]:
        """Newest first; filtered in the query, so old entries are never cut off by ``limit``.
        ``trained``: only retrains that produced a challenger (not skipped, not failed)."""
        t = audit_table
        stmt = sa.select(t).order_by(t.c.started_at.desc(), t.c.finished_at.desc()).limit(limit)
        if action is not None:
            stmt = stmt.where(t.c.action == action)
        if outcome is not None:
            stmt = stmt.where(t.c.outcome == outcome)
        if challenger_version is not None:
            stmt = stmt.where(t.c.challenger_version == challenger_version)
        if trained:
            stmt = stmt.where(t.c.challenger_version.is_not(None), t.c.outcome != "failed")
        rows = self._run(lambda conn: conn.execute(stmt).mappings().all(), write=False)
        return [AuditEntry.model_validate(dict(row)) for row in rows]


def record_everywhere(settings: Settings, audit: AuditLog, entry: AuditEntry) -> AuditEntry:
    """Write ``entry`` to the audit table and to MLflow (a failure of MLflow is noted in the
    table entry's details rather than losing the audit row)."""
    try:
        _record_in_mlflow(settings, entry)
    except Exception as error:  # the tracking server may be down; the table must still say why
        entry = entry.model_copy(update={"details": {**entry.details, "mlflow_error": str(error)}})
    return audit.record(entry)


def _experiment_id(settings: Settings) -> str:
    """The retraining experiment, created like the training one (artifacts under
    ``CREDITOPS_HOME`` unless a tracking server keeps them). The process's active experiment is
    left as it was."""
    import mlflow

    configure_tracking(settings)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = artifact_location(settings)
    return str(client.create_experiment(EXPERIMENT, artifact_location=location))


def _record_in_mlflow(settings: Settings, entry: AuditEntry) -> None:
    import mlflow

    experiment_id = _experiment_id(settings)
    client = mlflow.MlflowClient()
    run = client.create_run(
        experiment_id,
        run_name=f"{entry.action}-{entry.outcome}",
        tags={
            "action": entry.action,
            "outcome": entry.outcome,
            "champion_version": entry.champion_version or "",
            "challenger_version": entry.challenger_version or "",
            "audit_id": entry.id,
        },
    )
    for gate in entry.gates:
        client.log_metric(run.info.run_id, f"gate_{gate.name}_passed", float(gate.passed))
        if gate.value is not None:
            client.log_metric(run.info.run_id, f"gate_{gate.name}_value", gate.value)
    client.log_text(
        run.info.run_id, json.dumps(entry.model_dump(mode="json"), indent=2), "audit.json"
    )
    client.set_terminated(run.info.run_id)
    # A promotion or rollback that did not happen changed nothing about the version: its tags
    # stay as the last thing that did.
    changed = entry.action == "retrain" or entry.outcome in ("promoted", "rolled_back")
    if entry.challenger_version and changed:
        name, version = settings.registered_model_name, entry.challenger_version
        client.set_model_version_tag(name, version, f"{entry.action}_outcome", entry.outcome)
        if entry.action == "retrain":
            gates = {g.name: g.passed for g in entry.gates}
            client.set_model_version_tag(name, version, "retrain_gates", json.dumps(gates))
            client.set_model_version_tag(name, version, "retrain_audit_id", entry.id)
