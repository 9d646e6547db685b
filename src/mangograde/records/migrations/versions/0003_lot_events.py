"""Lots closed and reopened: one row an event (append-only, never an update); the latest
event says whether a lot stands closed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lot_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("lot_id", sa.Integer, sa.ForeignKey("lots.id"), nullable=False, index=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("why", sa.Text),
        sa.CheckConstraint("kind IN ('closed', 'reopened')", name="ck_lot_events_kind"),
    )


def downgrade() -> None:
    op.drop_table("lot_events")
