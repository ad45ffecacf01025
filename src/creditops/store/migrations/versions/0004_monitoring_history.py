"""Monitoring history for the dashboard: a person's acknowledgement on each alert (who, when,
their note), and each monitor run's whole report with its timeline of windows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        alerts.add_column(sa.Column("acknowledged_at", _TIME, nullable=True))
        alerts.add_column(sa.Column("acknowledged_by", sa.Text, nullable=True))
        alerts.add_column(sa.Column("acknowledgement", sa.Text, nullable=True))
    op.create_table(
        "monitor_reports",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("model_name", sa.Text, nullable=True),
        sa.Column("model_version", sa.Text, nullable=True),
        sa.Column("report", sa.JSON, nullable=False),
    )
    op.create_index(
        "ix_monitor_reports_model_created",
        "monitor_reports",
        ["model_name", "model_version", "created_at"],
    )
    op.create_index("ix_monitor_reports_created", "monitor_reports", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_monitor_reports_created", table_name="monitor_reports")
    op.drop_index("ix_monitor_reports_model_created", table_name="monitor_reports")
    op.drop_table("monitor_reports")
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_column("acknowledgement")
        alerts.drop_column("acknowledged_by")
        alerts.drop_column("acknowledged_at")
