"""Alembic migration scripts for :mod:`storage` (run through :mod:`storage.migrate`, no alembic.ini)."""
