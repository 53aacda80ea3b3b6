"""Storage: models, engine/session, repo (the only place SQL lives) and Alembic migrations.

``upgrade(engine)`` brings any database to the newest schema; ``bouncd db upgrade`` calls it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bouncd.db.session import describe_db_error
from bouncd.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")

__all__ = ["MIGRATIONS", "alembic_config", "current_revision", "head_revision", "upgrade"]


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at our migrations and at ``engine`` (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (default: the newest)."""
    try:
        command.upgrade(alembic_config(engine), revision)
    except SQLAlchemyError as exc:
        raise StoreError(describe_db_error(exc)) from exc


def head_revision() -> str | None:
    """The newest migration shipped with this version of bouncd."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(describe_db_error(exc)) from exc
