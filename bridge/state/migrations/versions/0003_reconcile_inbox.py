"""Read path, continued: per-entity sync bookkeeping, reconciliation runs, inbox.

* ``sync_cursor`` gains ``strategy_state`` (JSON owned by the entity's
  change strategy, e.g. the patient table's rolling slice position),
  ``last_success_at`` (last step that read the PMS without error: per-entity
  lag) and ``rows_examined`` (rows the bridge made the PMS examine, summed,
  for the idle-cost report).
* ``outbox`` gains ``lane`` (0 live deltas, 1 bulk first-sync rows): a
  receptionist's edit is sent ahead of a first-sync backlog.
* ``reconcile_run``: one row per entity sweep, for "% in sync, verified at".
* ``inbox_item``: every cloud inbox item, stored before it is acted on, so
  each is processed once across crashes and its result is posted
  idempotently. The inbox cursor lives in ``meta`` (``inbox.cursor``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_cursor") as batch:
        batch.add_column(sa.Column("strategy_state", sa.Text, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("last_success_at", sa.DateTime()))
        batch.add_column(
            sa.Column("rows_examined", sa.BigInteger, nullable=False, server_default="0")
        )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lane", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_outbox_lane_seq", "outbox", ["lane", "seq"])
    # staging replaces a key's unsent change: without this, a scan per chunk
    op.create_index("ix_outbox_entity_key", "outbox", ["entity", "key"])
    op.create_table(
        "reconcile_run",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(60), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("rows_pms", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rows_cloud", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rows_matched", sa.Integer, nullable=False, server_default="0"),
        sa.Column("resent", sa.Integer, nullable=False, server_default="0"),
        sa.Column("deleted", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_reconcile_run_entity", "reconcile_run", ["entity", "id"])
    op.create_table(
        "inbox_item",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("result_posted_at", sa.DateTime()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_inbox_item_state", "inbox_item", ["state"])


def downgrade() -> None:
    op.drop_index("ix_inbox_item_state", "inbox_item")
    op.drop_table("inbox_item")
    op.drop_index("ix_reconcile_run_entity", "reconcile_run")
    op.drop_table("reconcile_run")
    op.drop_index("ix_outbox_entity_key", "outbox")
    op.drop_index("ix_outbox_lane_seq", "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("lane")
    with op.batch_alter_table("sync_cursor") as batch:
        batch.drop_column("rows_examined")
        batch.drop_column("last_success_at")
        batch.drop_column("strategy_state")
