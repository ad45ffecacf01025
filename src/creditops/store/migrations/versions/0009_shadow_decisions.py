"""The challenger's shadow decisions: the same live applications scored by the version holding
the ``challenger`` alias, off the response's path (:mod:`creditops.store.shadow`), so the two
can be compared on live traffic long before outcomes arrive. On PostgreSQL, with a service role
named (as for revision 0006), that role may only insert and read them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from creditops.store.grants import grant_named_service_role

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "shadow_decisions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("prediction_id", sa.String(36), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("champion_version", sa.Text, nullable=False),
        sa.Column("probability", sa.Double, nullable=False),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("grade", sa.Text, nullable=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.CheckConstraint(
            "decision IN ('approve', 'refer', 'decline')", name="ck_shadow_decision"
        ),
    )
    op.create_index(
        "ix_shadow_version_created", "shadow_decisions", ["model_version", "created_at"]
    )
    op.create_index("ix_shadow_prediction", "shadow_decisions", ["prediction_id"])
    grant_named_service_role(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_shadow_prediction", table_name="shadow_decisions")
    op.drop_index("ix_shadow_version_created", table_name="shadow_decisions")
    op.drop_table("shadow_decisions")
