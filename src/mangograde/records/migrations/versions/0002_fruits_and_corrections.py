"""Fruits graded from several photos, and operators' corrections (append-only).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fruit_gradings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("lot_id", sa.Integer, sa.ForeignKey("lots.id"), nullable=False, index=True),
        sa.Column("fruit", sa.Text, nullable=False),
        sa.Column("grade", sa.Text, nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("check", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
    )
    with op.batch_alter_table("gradings") as table:
        table.add_column(sa.Column("fruit_grading_id", sa.Integer))
        table.create_foreign_key(
            "fk_gradings_fruit_grading", "fruit_gradings", ["fruit_grading_id"], ["id"]
        )
        table.create_index("ix_gradings_fruit_grading_id", ["fruit_grading_id"])
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "grading_id", sa.Integer, sa.ForeignKey("gradings.id"), nullable=False, index=True
        ),  # fmt: skip
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("grade", sa.Text, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("corrections")
    with op.batch_alter_table("gradings") as table:
        table.drop_index("ix_gradings_fruit_grading_id")
        table.drop_constraint("fk_gradings_fruit_grading", type_="foreignkey")
        table.drop_column("fruit_grading_id")
    op.drop_table("fruit_gradings")
