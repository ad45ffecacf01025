"""Who read what: each explanation and each opening of a decision's personal data, recorded
under the name of the key that asked (never the key), in the decision log's database.

A decision records who asked for it (``predictions.actor``), an outcome who reported it
(``outcomes.recorded_by``), an admin action who took it (the audit trail); reads leave no such
trace by themselves, yet an explanation of a logged decision shows an applicant's inputs and a
personal-data view shows who the applicant is. The table is append-only for the service's
database role (:mod:`creditops.store.grants`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict

from creditops.store.schema import access_log_table

if TYPE_CHECKING:
    from creditops.store.predlog import PredictionLog

__all__ = ["AccessAction", "AccessRecord", "read_access", "record_access"]

#: ``explain``: an application explained (nothing logged about the applicant);
#: ``explain_logged``: a logged decision explained again from its inputs;
#: ``open_personal_data``: a logged decision's personal data opened.
AccessAction = Literal["explain", "explain_logged", "open_personal_data"]


class AccessRecord(BaseModel):
    """One read: when, by whom, what, and about which decision and version."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    created_at: AwareDatetime
    actor: str
    action: AccessAction
    prediction_id: str | None = None
    model_version: str | None = None


def record_access(
    log: PredictionLog,
    actor: str,
    action: AccessAction,
    *,
    prediction_id: str | uuid.UUID | None = None,
    model_version: str | None = None,
) -> None:
    """Record one read, committed before the caller shows what was read."""
    row = {
        "id": str(uuid.uuid4()),
        "created_at": datetime.now(UTC),
        "actor": actor,
        "action": action,
        "prediction_id": None if prediction_id is None else str(prediction_id),
        "model_version": model_version,
    }
    log.transact(lambda conn: conn.execute(access_log_table.insert(), [row]))


def read_access(
    log: PredictionLog,
    *,
    prediction_id: str | uuid.UUID | None = None,
    actor: str | None = None,
    limit: int = 100,
) -> list[AccessRecord]:
    """The newest reads first, of one decision or by one actor when named."""
    t = access_log_table.c
    stmt = sa.select(t.created_at, t.actor, t.action, t.prediction_id, t.model_version)
    if prediction_id is not None:
        stmt = stmt.where(t.prediction_id == str(prediction_id))
    if actor is not None:
        stmt = stmt.where(t.actor == actor)
    stmt = stmt.order_by(t.created_at.desc(), t.id).limit(max(1, int(limit)))
    rows = log.read(lambda conn: conn.execute(stmt).mappings().all())
    return [AccessRecord.model_validate(dict(row)) for row in rows]
