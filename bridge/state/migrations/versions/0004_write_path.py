"""Write path: booking progress, front-desk exceptions, the audit trail.

* ``booking``: one row per booking inbox item, the stage it reached in the
  request-check-hold-confirm pipeline and the PMS ids it wrote, stored
  before each next PMS write so a crash resumes or undoes, never repeats.
* ``booking_exception``: decisions routed to the front desk, with the
  candidates or alternatives needed to resolve them.
* ``audit_entry``: the append-only, hash-chained trail of every PMS write
  and every decision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "booking",
        sa.Column("item_id", sa.String(128), primary_key=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("patient_id", sa.String(40)),
        sa.Column("patient_created", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("appointment_id", sa.String(40)),
        sa.Column("outcome", sa.String(20)),
        sa.Column("reason_code", sa.String(60), nullable=False, server_default=""),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_booking_stage", "booking", ["stage"])
    op.create_table(
        "booking_exception",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("reason_code", sa.String(60), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("context", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime()),
        sa.Column("resolution", sa.String(40)),
        sa.Column("resolution_detail", sa.Text, nullable=False, server_default="{}"),
        sa.Column("resolved_by", sa.String(100), nullable=False, server_default=""),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_booking_exception_state", "booking_exception", ["state", "id"])
    op.create_index("ix_booking_exception_item_id", "booking_exception", ["item_id"])
    op.create_table(
        "audit_entry",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(60), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("audit_entry")
    op.drop_index("ix_booking_exception_item_id", "booking_exception")
    op.drop_index("ix_booking_exception_state", "booking_exception")
    op.drop_table("booking_exception")
    op.drop_index("ix_booking_stage", "booking")
    op.drop_table("booking")
