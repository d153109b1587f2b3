"""First-sync pages: one outbox row per page of records, not per record.

* ``outbox_page``: a page of first-sync changes kept as the gzip-compressed
  ``POST /v1/changes`` body that sends it, with its batch id, entity, key
  range, change count and uncompressed size. Written in the transaction
  that advances the entity's first-sync cursor; deleted when the cloud
  acknowledges it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_page",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(64), nullable=False, unique=True),
        sa.Column("entity", sa.String(60), nullable=False),
        sa.Column("first_key", sa.String(100), nullable=False),
        sa.Column("last_key", sa.String(100), nullable=False),
        sa.Column("changes", sa.Integer, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("outbox_page")
