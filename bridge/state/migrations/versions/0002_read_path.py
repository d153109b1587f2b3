"""Read path: sync cursors, row hashes, outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
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
        "sync_cursor",
        sa.Column("entity", sa.String(60), primary_key=True),
        sa.Column("phase", sa.String(10), nullable=False),
        sa.Column("watermark", sa.String(40)),
        sa.Column("last_key", sa.String(100)),
        sa.Column("rows_done", sa.Integer, nullable=False),
        sa.Column("rows_total", sa.Integer),
        sa.Column("started_at", sa.DateTime()),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "row_state",
        sa.Column("entity", sa.String(60), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("hash", sa.String(32), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(60), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("op", sa.String(10), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("observed_at", sa.DateTime(), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("batch_id", sa.String(64)),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_batch_id", "outbox", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_batch_id", "outbox")
    op.drop_table("outbox")
    op.drop_table("row_state")
    op.drop_table("sync_cursor")
