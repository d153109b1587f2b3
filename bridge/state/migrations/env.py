"""Alembic environment: runs migrations on the connection the store hands in.

The store calls Alembic programmatically with ``config.attributes["connection"]``
set, so this file never opens a connection of its own and never reads an
ini file.
"""

from __future__ import annotations

from alembic import context

from bridge.state.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rebuilds tables.
)
with context.begin_transaction():
    context.run_migrations()
