"""Keys and who acted: the API keys (a salted hash of each, never the key), and the name of
the key behind each decision and each recorded outcome (an audited action names it in its
details).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("expires_at", _TIME, nullable=True),
        sa.Column("revoked_at", _TIME, nullable=True),
        sa.Column("revoked_by", sa.Text, nullable=True),
    )
    with op.batch_alter_table("predictions") as predictions:
        predictions.add_column(sa.Column("actor", sa.Text, nullable=True))
    with op.batch_alter_table("outcomes") as outcomes:
        outcomes.add_column(sa.Column("recorded_by", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outcomes") as outcomes:
        outcomes.drop_column("recorded_by")
    with op.batch_alter_table("predictions") as predictions:
        predictions.drop_column("actor")
    op.drop_table("api_keys")
