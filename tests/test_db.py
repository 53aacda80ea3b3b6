"""Storage on both backends: migrations match the models, idempotent storing, the append-only trail, the view."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bouncd.client import apply_dnc
from bouncd.db import current_revision, head_revision, repo
from bouncd.db.models import Base, Message
from bouncd.db.session import make_engine, normalize_url, transaction
from bouncd.errors import ConfigError, StoreError
from bouncd.records import Inbound

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def inbound(raw: bytes = b"Subject: x\r\n\r\nbody\r\n", **kw: object) -> Inbound:
    """An inbound message as the SMTP listener would hand it over."""
    values: dict[str, object] = {
        "raw": raw, "received_at": NOW, "mail_from": "", "rcpt_tos": ("bounces@example.org",), "peer": "192.0.2.7"
    }
    values.update(kw)
    return Inbound(**values)  # type: ignore[arg-type]


def test_migrations_create_exactly_the_schema_the_models_describe(engine: Engine) -> None:
    """After `upgrade`, Alembic finds no difference between the database and the ORM models."""
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrations_downgrade_and_upgrade_again(engine: Engine) -> None:
    """Every migration can be undone and redone (the trail guard and the view included)."""
    from alembic import command

    from bouncd.db import alembic_config, upgrade

    command.downgrade(alembic_config(engine), "base")
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    _trail_id(engine)


def test_same_bytes_are_stored_once_and_change_nothing(engine: Engine) -> None:
    """Storing identical bytes twice returns the first row, marked duplicate, and leaves one row."""
    raw = b"From: MAILER-DAEMON@example.net\r\nSubject: failure\r\n\r\n" + b"x" * 5000
    with transaction(engine) as s:
        first = repo.store_inbound(s, [inbound(raw)])[0]
    with transaction(engine) as s:
        again = repo.store_inbound(s, [inbound(raw, peer="198.51.100.1", received_at=datetime(2027, 1, 1, tzinfo=UTC))])[0]
        rows = s.execute(text("SELECT count(*) FROM messages")).scalar_one()
        msg = repo.get_message(s, first.message_id)
    assert not first.duplicate and again.duplicate
    assert again.message_id == first.message_id and rows == 1
    assert msg.peer == "192.0.2.7" and msg.received_at == NOW  # the second delivery changed nothing
    assert repo.raw_bytes(msg) == raw and len(msg.raw_z) < len(raw)
    assert zlib.decompress(msg.raw_z) == raw and msg.rcpt_tos == "bounces@example.org" and msg.state == "pending"


@pytest.mark.parametrize("raw", [b"", b"\x00binary junk\xff", b"x-lowercase-header: 1\r\n\r\nbody", b"From: a\r\n\r\n" * 50])
def test_raw_bytes_reads_both_stored_forms(raw: bytes) -> None:
    """raw_z holds zlib (ingest, import, processing) or the listener's marked plain bytes: both read back exact."""
    packed, plain = repo.pack_raw(raw), repo.pack_raw(raw, compress=False)
    assert not repo.is_plain(packed) and repo.is_plain(plain)
    assert repo.raw_bytes(SimpleNamespace(raw_z=packed)) == raw == repo.raw_bytes(SimpleNamespace(raw_z=plain))


def test_many_messages_in_one_transaction_each_get_their_row(engine: Engine) -> None:
    """Group commit: several messages (and a repeat) stored in one transaction, committed by the caller."""
    with Session(engine) as s, s.begin():
        refs = repo.store_inbound(s, [inbound(b"a"), inbound(b"b"), inbound(b"a")])
    assert [r.duplicate for r in refs] == [False, False, True]
    assert refs[0].message_id == refs[2].message_id != refs[1].message_id


def test_nothing_is_stored_when_the_caller_rolls_back(engine: Engine) -> None:
    """store_inbound does not commit: the caller decides (so the 250 follows the commit)."""
    with Session(engine) as s:
        s.begin()
        repo.store_inbound(s, [inbound(b"rolled back")])
        s.rollback()
    with transaction(engine) as s:
        assert s.execute(text("SELECT count(*) FROM messages")).scalar_one() == 0


def test_database_errors_become_store_errors(tmp_path: Path) -> None:
    """A database without the schema makes store_inbound raise StoreError, not a driver exception."""
    eng = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    with Session(eng) as s, pytest.raises(StoreError):
        repo.store_inbound(s, [inbound()])


def _trail_id(engine: Engine) -> int:
    with transaction(engine) as s:
        change = apply_dnc(s, "ann@example.com", on=True, source="manual", actor="test", note="asked", now=NOW)
    assert change.trail_id is not None
    return change.trail_id


@pytest.mark.parametrize(
    "statement",
    ["UPDATE dnc_trail SET note = 'rewritten' WHERE id = :id", "DELETE FROM dnc_trail WHERE id = :id"],
    ids=["update is refused", "delete is refused"],
)
def test_the_trail_is_append_only_in_the_database(engine: Engine, statement: str) -> None:
    """The database itself refuses to change or remove a trail entry, whoever asks."""
    trail_id = _trail_id(engine)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement), {"id": trail_id})
    with engine.connect() as conn:
        assert conn.execute(text("SELECT note FROM dnc_trail WHERE id = :id"), {"id": trail_id}).scalar_one() == "asked"


def test_truncating_the_trail_is_refused_on_postgresql(engine: Engine) -> None:
    """PostgreSQL: TRUNCATE (which skips row triggers) is refused by a statement trigger too."""
    if engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE exists on PostgreSQL only")
    _trail_id(engine)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("TRUNCATE dnc_trail CASCADE"))


def test_two_entries_cannot_share_a_place_in_a_contacts_trail(engine: Engine) -> None:
    """(contact, seq) is unique: two writers that both read the same state cannot both append."""
    trail_id = _trail_id(engine)
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO dnc_trail (contact_id, seq, action, source, actor, note, at) "
                "SELECT contact_id, seq, 'off', 'manual', 'racer', 'dup', at FROM dnc_trail WHERE id = :id"
            ),
            {"id": trail_id},
        )


def test_the_status_view_gives_address_dnc_since_and_reason(engine: Engine) -> None:
    """Other apps read contact_status: address, dnc, since and the current reason in words."""
    _trail_id(engine)
    with transaction(engine) as s:
        apply_dnc(s, "bob@example.com", on=True, source="manual", actor="t", note="first", now=NOW)
        apply_dnc(s, "bob@example.com", on=False, source="manual", actor="t", note="cleared", now=NOW)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT address, dnc, since, source, reason FROM contact_status ORDER BY address")).all()
    ann, bob = rows
    assert ann.address == "ann@example.com" and bool(ann.dnc) and ann.since is not None
    assert ann.source == "manual" and ann.reason == "asked"
    assert bob.address == "bob@example.com" and not bool(bob.dnc) and bob.since is None and bob.reason is None


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    """Times must carry a zone: a naive one would be read back shifted on some hosts."""
    with pytest.raises(StoreError), transaction(engine) as s:
        s.add(
            Message(sha256="0" * 64, raw_z=b"", raw_size=0, rcpt_tos="", protocol="cli", received_at=datetime(2026, 1, 1),
                    state="pending", attempts=0)
        )
        s.flush()


def test_sqlite_engine_is_durable_and_concurrent(tmp_path: Path) -> None:
    """SQLite runs in WAL with synchronous=FULL and a busy timeout, and its directory is created."""
    path = tmp_path / "deep" / "dir" / "b.sqlite3"
    eng = make_engine(f"sqlite:///{path}")
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
    assert path.parent.is_dir()


def test_postgresql_urls_use_psycopg_3() -> None:
    """postgresql:// and postgres:// both select the psycopg 3 driver; other URLs are left alone."""
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x") == "sqlite:///x"


@pytest.mark.parametrize("url", ["mysql://h/db", "not a url"])
def test_unsupported_urls_say_so(url: str) -> None:
    """An unsupported or malformed database URL is a configuration error in plain words."""
    with pytest.raises(ConfigError):
        make_engine(url)


def _upgrade_worker(url: str, barrier: Any, out: Any) -> None:
    """Child process: migrate the database at the same moment as the others."""
    from bouncd.db import upgrade

    engine = make_engine(url)
    barrier.wait(timeout=60)
    try:
        upgrade(engine)
        out.put("ok")
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")
    engine.dispose()


def test_processes_starting_at_once_migrate_the_database_once(db_url: str) -> None:
    """Several daemons starting together against an empty database all come up; the schema is created once."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_upgrade_worker, args=(db_url, barrier, out)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert results == ["ok", "ok", "ok"]
    assert current_revision(make_engine(db_url)) == head_revision()


def test_readers_do_not_wait_for_a_writer_on_sqlite(tmp_path: Path) -> None:
    """WAL: while a unit of work holds the write lock, read-only transactions (CLI, other apps) still answer."""
    import time

    from bouncd.client import Client
    from bouncd.db import upgrade

    eng = make_engine(f"sqlite:///{tmp_path / 'b.sqlite3'}")
    upgrade(eng)
    _trail_id(eng)
    with transaction(eng) as busy:  # a writer in the middle of its transaction
        busy.execute(text("UPDATE contacts SET external_id = 'x'"))
        started = time.monotonic()
        assert not Client(engine=eng).is_contactable("ann@example.com")
        with transaction(eng, readonly=True) as s:
            assert repo.find_contact(s, "ann@example.com") is not None
        assert time.monotonic() - started < 5
