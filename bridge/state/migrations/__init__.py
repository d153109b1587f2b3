"""Alembic migrations of the local state store (numbered, applied at open)."""
