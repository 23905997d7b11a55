"""Alembic migrations of the store (applied by ``conversation migrate`` or at start-up)."""
