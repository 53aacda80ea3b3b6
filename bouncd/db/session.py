"""Engine and session factory for SQLite (embedded default) and PostgreSQL (shared production store)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bouncd.errors import ConfigError, StoreError

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_BEGIN_OPTION = "bouncd_sqlite_begin"


def normalize_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` to the psycopg 3 driver; leave other URLs alone."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (other apps, the CLI) work while the daemon writes; synchronous=FULL makes a
    # commit durable before we answer 250 (https://sqlite.org/pragma.html#pragma_synchronous).
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # Switching a new file to WAL needs it to itself and does not always wait on the busy handler
    # (several processes opening a fresh database at once), so retry for as long as a lock would wait.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
    # Take pysqlite's hands off transactions so that we can BEGIN IMMEDIATE ourselves.
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # Writers (``transaction(engine)``) BEGIN IMMEDIATE: the write lock is taken up front, so a
    # transaction that reads a contact's history and then writes the trail cannot be overtaken by
    # another writer in between (SQLite's answer to SELECT ... FOR UPDATE), and lock waits go through
    # busy_timeout instead of failing mid-way. Readers BEGIN (deferred): in WAL they never block the
    # listener's commits, nor wait for them.
    mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def writer(engine: Engine) -> Engine:
    """``engine`` for a read-then-write unit of work (SQLite: BEGIN IMMEDIATE; PostgreSQL: unchanged)."""
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})


def make_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite gets WAL, synchronous=FULL, a busy timeout and its directory created."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {url!r}") from exc
    try:
        if parsed.get_backend_name() == "sqlite":
            db = parsed.database
            if db and db != ":memory:" and not db.startswith("file:"):
                try:
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the directory for {db}: {exc.strerror}") from exc
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        elif parsed.get_backend_name() == "postgresql":
            engine = create_engine(parsed, pool_pre_ping=True)
        else:
            raise ConfigError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open database: {exc}") from exc
    except ModuleNotFoundError as exc:
        raise ConfigError(f"database driver missing: {exc.name} (install bouncd[postgres])") from exc
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (results are read after the transaction ends)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine, *, readonly: bool = False) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error, database errors become StoreError.

    ``readonly`` transactions do not take SQLite's write lock (use them for anything that only reads).
    """
    session = Session(engine if readonly else writer(engine), expire_on_commit=False)
    try:
        with session.begin():
            yield session
    except SQLAlchemyError as exc:
        raise StoreError(describe_db_error(exc)) from exc
    finally:
        session.close()


def describe_db_error(exc: SQLAlchemyError) -> str:
    """One line that says what the database refused, without SQL or parameters."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"database error: {text[0] if text else type(exc).__name__}"
