"""Export folders: one row per file found, and how far it got.

* ``export_file``: per ``(folder label, path below the folder)`` the file's
  size and modification time as last seen, its state (``waiting``,
  ``sending``, ``uploaded``, ``duplicate``, ``quarantined``) with a reason,
  its SHA-256 and kind once hashed, and whether the after-upload action
  (keep, move to the archive, delete) ran. A restart reads it to neither
  lose nor re-send a file.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_file",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("folder", sa.String(40), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason_code", sa.String(40), nullable=False, server_default=""),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("kind", sa.String(20)),
        sa.Column("format", sa.String(20)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime()),
        sa.Column("after_done", sa.String(10)),
        sa.Column("archived_to", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_export_file_folder_path", "export_file", ["folder", "path"], unique=True)
    op.create_index("ix_export_file_state", "export_file", ["state"])
    op.create_index("ix_export_file_updated_at", "export_file", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_export_file_updated_at", "export_file")
    op.drop_index("ix_export_file_state", "export_file")
    op.drop_index("ix_export_file_folder_path", "export_file")
    op.drop_table("export_file")
