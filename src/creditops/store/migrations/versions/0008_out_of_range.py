"""Decisions made on inputs outside the model's experience: the features whose value lay past
the training range, or named a category training never saw (:mod:`creditops.data.experience`),
as a JSON list per decision; NULL when none did. The monitor and the audit read it; it is not
part of the hash chain, since it follows from the chained features and the version's spec.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "predictions", sa.Column("out_of_range", sa.JSON(none_as_null=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("predictions") as predictions:
        predictions.drop_column("out_of_range")
