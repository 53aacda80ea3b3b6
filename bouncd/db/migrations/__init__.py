"""Alembic migrations for bouncd (run with ``bouncd db upgrade``)."""
