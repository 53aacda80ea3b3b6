"""Alembic environment: runs migrations on the engine handed over by ``bouncd.db.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from bouncd.db.models import Base

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through bouncd.db.upgrade(engine) or `bouncd db upgrade`")

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
