"""Personal data in the decision log, and who read it: the spec's ``pii`` fields of each
decision, sealed as one Fernet token (:mod:`creditops.store.pii`), and the access log of
explanations and openings of personal data (:mod:`creditops.store.access_log`). Chains written
from here on hash the token too (chain format 2); the chains already written keep format 1 and
verify as they were written. On PostgreSQL, with a service role named (as for revision 0006),
that role may only insert and read the access log.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from creditops.store.grants import grant_named_service_role

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("predictions", sa.Column("pii", sa.Text, nullable=True))
    op.create_table(
        "access_log",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("prediction_id", sa.String(36), nullable=True),
        sa.Column("model_version", sa.Text, nullable=True),
    )
    op.create_index("ix_access_log_prediction", "access_log", ["prediction_id", "created_at"])
    op.create_index("ix_access_log_created", "access_log", ["created_at"])
    bind = op.get_bind()
    grant_named_service_role(bind)


def downgrade() -> None:
    op.drop_index("ix_access_log_created", table_name="access_log")
    op.drop_index("ix_access_log_prediction", table_name="access_log")
    op.drop_table("access_log")
    with op.batch_alter_table("predictions") as predictions:
        predictions.drop_column("pii")
