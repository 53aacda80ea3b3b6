"""Alembic environment: runs migrations on the engine handed over by ``bouncd.db.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, text

from bouncd.db.models import Base
from bouncd.db.session import writer

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through bouncd.db.upgrade(engine) or `bouncd db upgrade`")

# Two processes starting at once (serve on several hosts) must not both migrate: PostgreSQL takes an
# advisory lock for the transaction; SQLite's BEGIN IMMEDIATE (bouncd.db.session) already serialises.
MIGRATION_LOCK_KEY = 0x626F756E6364  # "bouncd"

with writer(engine).connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()
    connection.commit()
