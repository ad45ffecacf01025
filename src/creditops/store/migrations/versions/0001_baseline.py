"""The tables creditops's stores created before migrations: the decision log (predictions,
outcomes), the alert store (alerts, monitor_runs) and the retraining audit.

A database made before migrations may hold some of them already (each store created its own
on first use); those are kept as they are (their columns were checked before this runs) and
only the missing ones are created.

Revision ID: 0001
Revises:
Create Date: 2025-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# What the stores' UTCDateTime is in the database: timestamptz, or text on SQLite.
_TIME = sa.DateTime(timezone=True)


def _predictions() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("protected", sa.JSON, nullable=False),
        sa.Column("imputed", sa.JSON, nullable=False),
        sa.Column("probability", sa.Double, nullable=False),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("grade", sa.Text, nullable=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("latency_ms", sa.Double, nullable=False),
        sa.CheckConstraint("decision IN ('approve', 'refer', 'decline')", name="ck_decision"),
        sa.CheckConstraint("probability >= 0 AND probability <= 1", name="ck_probability"),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])


def _outcomes() -> None:
    op.create_table(
        "outcomes",
        sa.Column(
            "prediction_id", sa.String(36), sa.ForeignKey("predictions.id"), primary_key=True
        ),
        sa.Column("outcome", sa.SmallInteger, nullable=False),
        sa.Column("observed_at", _TIME, nullable=True),
        sa.Column("recorded_at", _TIME, nullable=False),
        sa.CheckConstraint("outcome IN (0, 1)", name="ck_outcome"),
    )


def _alerts() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("check_name", sa.String(64), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("threshold", sa.Double, nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("model_name", sa.Text, nullable=True),
        sa.Column("model_version", sa.Text, nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.CheckConstraint("level IN ('info', 'warning', 'critical')", name="ck_alert_level"),
    )
    op.create_index("ix_alerts_created_at", "alerts", ["created_at"])
    op.create_index("ix_alerts_run_id", "alerts", ["run_id"])
    op.create_index("ix_alerts_check_created", "alerts", ["check_name", "created_at"])


def _monitor_runs() -> None:
    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=False),
        sa.Column("model_name", sa.Text, nullable=True),
        sa.Column("model_version", sa.Text, nullable=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("drift_level", sa.String(16), nullable=True),
        sa.Column("drift_share", sa.Double, nullable=True),
        sa.Column("prediction_psi", sa.Double, nullable=True),
        sa.Column("realised_roc_auc", sa.Double, nullable=True),
        sa.Column("realised_auc_drop_relative", sa.Double, nullable=True),
        sa.Column("estimated_roc_auc", sa.Double, nullable=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
    )
    op.create_index("ix_monitor_runs_started_at", "monitor_runs", ["started_at"])


def _retraining_audit() -> None:
    op.create_table(
        "retraining_audit",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("champion_version", sa.Text, nullable=True),
        sa.Column("challenger_version", sa.Text, nullable=True),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("gates", sa.JSON, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_retraining_audit_started_at", "retraining_audit", ["started_at"])


_TABLES = {
    "predictions": _predictions,
    "outcomes": _outcomes,
    "alerts": _alerts,
    "monitor_runs": _monitor_runs,
    "retraining_audit": _retraining_audit,
}


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, create in _TABLES.items():  # predictions before outcomes: the foreign key
        if name not in existing:
            create()


def downgrade() -> None:
    for name in reversed(_TABLES):
        op.drop_table(name)
