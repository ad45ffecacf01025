"""Searching the decision log newest first by decision, by model version or by outcome known
(the dashboard's audit search pages through millions of decisions with these): two indexes on
predictions, and outcomes.decided_at (the decision's time, filled from predictions) indexed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
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
    op.add_column("outcomes", sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE outcomes SET decided_at = "
        "(SELECT created_at FROM predictions WHERE predictions.id = outcomes.prediction_id)"
    )
    op.create_index("ix_outcomes_decided", "outcomes", ["decided_at", "prediction_id"])


def downgrade() -> None:
    op.drop_index("ix_outcomes_decided", table_name="outcomes")
    with op.batch_alter_table("outcomes") as batch:
        batch.drop_column("decided_at")
    op.drop_index("ix_predictions_version_created", table_name="predictions")
    op.drop_index("ix_predictions_decision_created", table_name="predictions")
