"""Lots and the photos graded in them.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lots",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text),
    )
    op.create_table(
        "gradings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("lot_id", sa.Integer, sa.ForeignKey("lots.id"), nullable=False, index=True),
        sa.Column("fruit", sa.Text),
        sa.Column("photo", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("run", sa.Text, nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("grade", sa.Text, nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("check", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("familiarity", sa.Float),
        sa.Column("latency_ms", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("gradings")
    op.drop_table("lots")
