"""Indexes for searching the decision log by decision or by model version, newest first (the
dashboard's audit search pages through millions of decisions with them).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_predictions_decision_created", "predictions", ["decision", "created_at"])
    op.create_index(
        "ix_predictions_version_created", "predictions", ["model_version", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_version_created", table_name="predictions")
    op.drop_index("ix_predictions_decision_created", table_name="predictions")
