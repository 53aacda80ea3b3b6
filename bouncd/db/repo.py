"""Every SQL statement bouncd runs. Functions take a session; the caller owns the transaction."""

from __future__ import annotations

import functools
import hashlib
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    LargeBinary,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bouncd.db.models import BounceEvent, Contact, Message, TrailEntry, UTCDateTime
from bouncd.db.session import describe_db_error
from bouncd.errors import NotFound, StoreError
from bouncd.records import Inbound

__all__ = [
    "ContactRow",
    "PendingMessage",
    "StoredRef",
    "add_event",
    "append_trail",
    "claim_pending",
    "claim_pending_batch",
    "contact_trail",
    "counted_soft_arrivals",
    "counted_soft_arrivals_of",
    "delete_unused_contacts",
    "find_contact",
    "finish_messages",
    "get_message",
    "inbound_row",
    "insert_events",
    "insert_trail",
    "is_plain",
    "list_bounces",
    "list_dnc",
    "lock_contact",
    "lock_contacts",
    "mark_failed",
    "mark_failed_many",
    "pack_raw",
    "peek_pending_batch",
    "raw_bytes",
    "recent_bounces",
    "stats",
    "still_pending",
    "store_inbound",
    "store_inbound_batch",
    "store_inbound_rows",
    "update_contacts",
]

# Rows per multi-row statement: well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
CHUNK = 500
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

MESSAGES: Table = Message.__table__  # type: ignore[assignment]
CONTACTS: Table = Contact.__table__  # type: ignore[assignment]
EVENTS: Table = BounceEvent.__table__  # type: ignore[assignment]
TRAIL: Table = TrailEntry.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class StoredRef:
    """Where a stored message went: its row id, and whether the same bytes were already stored."""

    message_id: int
    duplicate: bool
    sha256: str


def _insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def store_inbound(session: Session, items: Sequence[Inbound]) -> list[StoredRef]:
    """Store raw messages (compressed) with envelope, peer and time; same bytes -> same row, nothing changes."""
    refs: list[StoredRef] = []
    try:
        for item in items:
            digest = hashlib.sha256(item.raw).hexdigest()
            stmt = (
                _insert(session, Message)
                .values(
                    sha256=digest,
                    raw_z=pack_raw(item.raw),
                    raw_size=len(item.raw),
                    mail_from=item.mail_from,
                    rcpt_tos="\n".join(item.rcpt_tos),
                    peer=item.peer,
                    protocol=item.protocol,
                    received_at=item.received_at,
                    state="pending",
                    attempts=0,
                )
                .on_conflict_do_nothing(index_elements=["sha256"])
                .returning(Message.id)
            )
            new_id = session.execute(stmt).scalar_one_or_none()
            if new_id is not None:
                refs.append(StoredRef(int(new_id), False, digest))
                continue
            old_id = session.execute(select(Message.id).where(Message.sha256 == digest)).scalar_one()
            refs.append(StoredRef(int(old_id), True, digest))
    except SQLAlchemyError as exc:
        raise StoreError(describe_db_error(exc)) from exc
    return refs


def store_inbound_batch(session: Session, items: Sequence[Inbound]) -> list[StoredRef]:
    """``store_inbound`` for the daemon's group commit: same result, three statements for the whole batch.

    One executemany INSERT ... ON CONFLICT DO NOTHING between two SELECTs by SHA-256, instead of a
    statement per message: measured 0.77 -> 0.27 ms per message under 32-connection SMTP load (SQLite),
    which is what lets the acceptance path keep up with a handler that stores nothing.
    """
    digests = [hashlib.sha256(item.raw).hexdigest() for item in items]
    unique = list(dict.fromkeys(digests))
    try:
        known = dict(session.execute(select(Message.sha256, Message.id).where(Message.sha256.in_(unique))).all())
        rows: list[dict[str, Any]] = []
        queued: set[str] = set(known)
        for digest, item in zip(digests, items, strict=True):
            if digest in queued:
                continue
            queued.add(digest)
            rows.append(_message_row(item, digest))
        if rows:
            session.execute(_insert(session, Message).on_conflict_do_nothing(index_elements=["sha256"]), rows)
        ids = dict(session.execute(select(Message.sha256, Message.id).where(Message.sha256.in_(unique))).all())
    except SQLAlchemyError as exc:
        raise StoreError(describe_db_error(exc)) from exc
    refs: list[StoredRef] = []
    seen: set[str] = set(known)
    for digest in digests:
        refs.append(StoredRef(int(ids[digest]), digest in seen, digest))
        seen.add(digest)
    return refs


# ``messages.raw_z`` holds the bytes as received in one of two forms: a zlib stream (zlib's first byte is
# 0x78) or PLAIN_MARK followed by the bytes as they are. The SMTP listener stores the plain form: zlib
# gives up the GIL for every message it compresses, and each time the commit thread then waited for the
# event loop to hand it back (acceptance 2,770 -> 2,300 msgs/s with it, bench/smtp_bench.py). Processing
# compresses each message afterwards, in its own process, in the UPDATE that marks it processed
# (finish_messages' ``b_raw_z``).
PLAIN_MARK = b"\x00"


def pack_raw(raw: bytes, *, compress: bool = True) -> bytes:
    """The ``raw_z`` value for ``raw``: zlib-compressed, or marked plain for processing to compress later."""
    return zlib.compress(raw, 6) if compress else PLAIN_MARK + raw


def is_plain(raw_z: bytes) -> bool:
    """True for a ``raw_z`` value stored uncompressed (by the listener) and not compressed yet."""
    return raw_z[:1] == PLAIN_MARK


def inbound_row(item: Inbound, *, compress: bool = True) -> dict[str, Any]:
    """The ``messages`` row for one received message: SHA-256, the bytes (see pack_raw), envelope; no I/O."""
    return _message_row(item, hashlib.sha256(item.raw).hexdigest(), compress)


def _message_row(item: Inbound, digest: str, compress: bool = True) -> dict[str, Any]:
    return {
        "sha256": digest,
        "raw_z": pack_raw(item.raw, compress=compress),
        "raw_size": len(item.raw),
        "mail_from": item.mail_from,
        "rcpt_tos": "\n".join(item.rcpt_tos),
        "peer": item.peer,
        "protocol": item.protocol,
        "received_at": item.received_at,
        "state": "pending",
        "attempts": 0,
    }


def store_inbound_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[StoredRef]:
    """``store_inbound_batch`` on a Core connection (the listener's long-lived writer): same rows, same refs.

    ``rows`` come from :func:`inbound_row` (built before the transaction). The caller owns the
    transaction (``with conn.begin()``; or autocommit, where the one INSERT is the atomic unit). One
    INSERT ... ON CONFLICT DO NOTHING RETURNING for the batch (a row not returned was stored before: a
    duplicate), and a SELECT only for those: one statement per batch instead of three, each a GIL hand-off
    (and on PostgreSQL a round trip) the SMTP replies wait for. No ORM session: its unit-of-work machinery
    cost more CPU per batch than the statements.
    """
    table = MESSAGES
    digests = [str(row["sha256"]) for row in rows]
    fresh: list[dict[str, Any]] = []
    queued: set[str] = set()
    for digest, row in zip(digests, rows, strict=True):
        if digest not in queued:  # the same bytes twice in one batch: one row, the second a duplicate
            queued.add(digest)
            fresh.append(row)
    try:
        if conn.dialect.name == "postgresql":
            cols = tuple(fresh[0])
            sql = _pg_unnest_insert(conn.dialect, table, cols, "ON CONFLICT (sha256) DO NOTHING RETURNING sha256, id")
            stored = conn.exec_driver_sql(sql, {c: [row[c] for row in fresh] for c in cols})
        else:
            insert = sqlite.insert(table).on_conflict_do_nothing(index_elements=["sha256"])
            stored = conn.execute(insert.returning(table.c.sha256, table.c.id), fresh)
        new: dict[str, int] = {str(d): int(i) for d, i in stored}
        missing = [d for d in queued if d not in new]
        known: dict[str, int] = {}
        if missing:
            by_digest = select(table.c.sha256, table.c.id).where(table.c.sha256.in_(missing))
            known = {str(d): int(i) for d, i in conn.execute(by_digest)}
    except SQLAlchemyError as exc:
        raise StoreError(describe_db_error(exc)) from exc
    ids = {**known, **new}
    refs: list[StoredRef] = []
    seen: set[str] = set(known)
    for digest in digests:
        refs.append(StoredRef(ids[digest], digest in seen, digest))
        seen.add(digest)
    return refs


def set_arrival_override(session: Session, message_id: int, at: datetime) -> None:
    """Record the operator's ``--received-at`` for a message (used instead of the report's dates)."""
    session.execute(update(Message).where(Message.id == message_id).values(arrival_override=at))


class HasRaw(Protocol):
    """Anything carrying a stored message's bytes (the ORM row or a ``PendingMessage``)."""

    @property
    def raw_z(self) -> bytes:
        """The raw bytes, zlib-compressed or marked plain (see pack_raw)."""


def raw_bytes(message: HasRaw) -> bytes:
    """The message exactly as received."""
    blob = message.raw_z
    return blob[1:] if is_plain(blob) else zlib.decompress(blob)


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- the processing queue, a batch at a time (Core statements: no ORM identity map on the hot path) --


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """What processing reads of one unprocessed message's row."""

    id: int
    raw_z: bytes
    rcpt_tos: str
    protocol: str
    received_at: datetime
    arrival_override: datetime | None


def _pending(limit: int, ids: Sequence[int] | None) -> Select[Any]:
    m = MESSAGES.c
    stmt = select(m.id, m.raw_z, m.rcpt_tos, m.protocol, m.received_at, m.arrival_override).where(m.state == "pending")
    if ids is not None:
        stmt = stmt.where(m.id.in_(ids))
    return stmt.order_by(m.id).limit(limit)


def claim_pending_batch(session: Session, limit: int, ids: Sequence[int] | None = None) -> list[PendingMessage]:
    """Lock up to ``limit`` unprocessed messages (only ``ids`` if given), oldest first, for this transaction.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so several processes or hosts share the queue without waiting
    on each other or taking the same message. SQLite: the transaction already holds the single write lock.
    """
    rows = session.execute(_pending(limit, ids).with_for_update(skip_locked=True)).all()
    return [PendingMessage(*row) for row in rows]


def peek_pending_batch(session: Session, limit: int, ids: Sequence[int] | None = None) -> list[PendingMessage]:
    """Up to ``limit`` unprocessed messages (only ``ids`` if given), oldest first, without locking them."""
    return [PendingMessage(*row) for row in session.execute(_pending(limit, ids)).all()]


def still_pending(session: Session, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` are still unprocessed (SQLite, under the write lock: nobody else can take them now)."""
    m = MESSAGES.c
    found: set[int] = set()
    for chunk in _chunks(ids):
        found.update(int(i) for i in session.execute(select(m.id).where(m.id.in_(chunk), m.state == "pending")).scalars())
    return found


def finish_messages(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Mark messages processed with their outcome (row keys: ``b_`` + id, kind, detector, parse_error, signed,
    arrived_at, processed_at, raw_z: the compressed bytes of a message stored plain, None to keep them)."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        fixed = "state = 'processed', error = NULL, attempts = attempts + 1"
        _pg_update_from_arrays(session, MESSAGES, rows, fixed, keep_on_null=("raw_z",))
        return
    m = MESSAGES.c
    stmt = (
        update(MESSAGES)
        .where(m.id == bindparam("b_id"))
        .values(
            state="processed",
            kind=bindparam("b_kind"),
            detector=bindparam("b_detector"),
            parse_error=bindparam("b_parse_error"),
            error=None,
            signed=bindparam("b_signed"),
            arrived_at=bindparam("b_arrived_at", type_=UTCDateTime()),
            processed_at=bindparam("b_processed_at", type_=UTCDateTime()),
            attempts=m.attempts + 1,
            raw_z=func.coalesce(bindparam("b_raw_z", type_=LargeBinary()), m.raw_z),
        )
    )
    session.execute(stmt, list(rows))


def mark_failed_many(session: Session, failures: Sequence[tuple[int, str]], at: datetime) -> None:
    """``mark_failed`` for several messages in one statement; ``failures`` holds (message id, error)."""
    if not failures:
        return
    m = MESSAGES.c
    stmt = (
        update(MESSAGES)
        .where(m.id == bindparam("b_id"), m.state != "processed")
        .values(state="failed", error=bindparam("b_error"), processed_at=at, attempts=m.attempts + 1)
    )
    session.execute(stmt, [{"b_id": mid, "b_error": error[:2000]} for mid, error in failures])


@dataclass(frozen=True, slots=True)
class ContactRow:
    """A locked contact's state as processing reads it."""

    id: int
    address: str
    dnc: bool
    trail_seq: int


def lock_contacts(session: Session, addresses: Iterable[str], now: datetime) -> tuple[dict[str, ContactRow], set[str]]:
    """Create the contacts not known yet, then lock every row until commit; returns them and the addresses created.

    Both steps go in one order (code point order: ``COLLATE "C"`` on PostgreSQL, Python's ``sorted``),
    so two workers locking overlapping sets never wait on each other in a cycle.
    """
    wanted = sorted(set(addresses))
    created: set[str] = set()
    found: dict[str, ContactRow] = {}
    if not wanted:
        return found, created
    if session.get_bind().dialect.name == "postgresql":
        conn = session.connection()
        created.update(conn.exec_driver_sql(_PG_CREATE_CONTACTS, {"addresses": wanted, "now": now}).scalars())
        for cid, address, dnc, seq in conn.exec_driver_sql(_PG_LOCK_CONTACTS, {"addresses": wanted}).all():
            found[address] = ContactRow(int(cid), address, bool(dnc), int(seq))
        return found, created
    # SQLite: this transaction holds the database's only write lock (BEGIN IMMEDIATE), so the contacts not
    # found cannot appear before we insert them. Read, insert the missing (one cached statement, executemany),
    # read those: a multi-row VALUES list was compiled anew for every batch, most of this function's time.
    c = CONTACTS.c
    by_address = select(c.id, c.address, c.dnc, c.trail_seq).where(c.address.in_(bindparam("addresses", expanding=True)))

    def read(addresses: Sequence[str]) -> None:
        for chunk in _chunks(addresses):
            for cid, address, dnc, seq in session.execute(by_address, {"addresses": list(chunk)}).all():
                found[address] = ContactRow(int(cid), address, bool(dnc), int(seq))

    read(wanted)
    missing = [a for a in wanted if a not in found]
    if missing:
        session.execute(insert(CONTACTS), [{"address": a, "dnc": False, "trail_seq": 0, "created_at": now} for a in missing])
        created.update(missing)
        read(missing)
    return found, created


# PostgreSQL gets the whole batch as one array parameter: the statement text stays the same whatever the
# batch size (psycopg converts and prepares it once; a multi-row VALUES list of a few thousand placeholders
# was re-parsed by psycopg for every batch, most of the database time). COLLATE "C" orders by code point,
# as Python's sorted() does. SQLite needs no row locks: the writer holds the database's only write lock.
_PG_CREATE_CONTACTS = """
INSERT INTO contacts (address, dnc, trail_seq, created_at)
SELECT a, false, 0, %(now)s FROM unnest(%(addresses)s::varchar[]) AS u(a) ORDER BY a COLLATE "C"
ON CONFLICT (address) DO NOTHING RETURNING address
"""
_PG_LOCK_CONTACTS = """
SELECT id, address, dnc, trail_seq FROM contacts WHERE address = ANY(%(addresses)s::varchar[])
ORDER BY address COLLATE "C" FOR UPDATE
"""


def delete_unused_contacts(session: Session, addresses: Iterable[str]) -> None:
    """Remove contacts this transaction created that ended up with no event (their message failed)."""
    c = CONTACTS.c
    unused = ~select(EVENTS.c.id).where(EVENTS.c.contact_id == c.id).exists()
    for chunk in _chunks(sorted(set(addresses))):
        session.execute(delete(CONTACTS).where(c.address.in_(chunk), c.trail_seq == 0, unused))


def counted_soft_arrivals_of(
    session: Session, contact_ids: Iterable[int], since: datetime, until: datetime
) -> dict[int, list[datetime]]:
    """``counted_soft_arrivals`` for many contacts in one query: arrivals between ``since`` and ``until``."""
    e = EVENTS.c
    t = TRAIL.c
    cleared = select(func.max(t.at)).where(t.contact_id == e.contact_id, t.action == "off").correlate(EVENTS).scalar_subquery()
    ids = sorted(set(contact_ids))
    out: dict[int, list[datetime]] = {i: [] for i in ids}
    for chunk in _chunks(ids):
        stmt = select(e.contact_id, e.arrived_at).where(
            e.contact_id.in_(chunk),
            e.counted.is_(True),
            e.superseded.is_(False),
            e.arrived_at >= since,
            e.arrived_at <= until,
            e.recorded_at > func.coalesce(cleared, literal(EPOCH, UTCDateTime())),
        )
        for cid, arrived in session.execute(stmt).all():
            out[int(cid)].append(arrived)
    return out


def _pg_array(session: Session, table: Table, column: str, param: str) -> str:
    return _pg_array_of(session.get_bind().dialect, table, column, param)


def _pg_array_of(dialect: Dialect, table: Table, column: str, param: str) -> str:
    # Element types without a length: an explicit cast to varchar(n) would cut silently; the assignment
    # cast of the INSERT or UPDATE refuses an over-long value, as a plain statement does.
    sql_type = table.c[column].type.compile(dialect=dialect)
    return f"%({param})s::{re.sub(r'[(][0-9, ]+[)]', '', sql_type)}[]"


def _pg_update_from_arrays(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], fixed: str = "", keep_on_null: Sequence[str] = ()
) -> None:
    """PostgreSQL: update rows by id from one array per column (row keys ``b_`` + column) in one statement;
    a NULL in a ``keep_on_null`` column keeps the row's value."""
    cols = [k[2:] for k in rows[0] if k != "b_id"]
    sets = ", ".join(
        [f'"{c}" = COALESCE(u."{c}", {table.name}."{c}")' if c in keep_on_null else f'"{c}" = u."{c}"' for c in cols]
        + ([fixed] if fixed else [])
    )
    arrays = ", ".join(_pg_array(session, table, c, f"b_{c}") for c in ["id", *cols])
    names = ", ".join(f'"{c}"' for c in ["id", *cols])
    sql = f"UPDATE {table.name} SET {sets} FROM unnest({arrays}) AS u({names}) WHERE {table.name}.id = u.id"
    session.connection().exec_driver_sql(sql, {k: [r[k] for r in rows] for k in rows[0]})


@functools.cache
def _pg_unnest_insert(dialect: Dialect, table: Table, cols: tuple[str, ...], tail: str) -> str:
    """PostgreSQL: INSERT of many rows given as one array per column (parameters named after the columns),
    in the order given. The text is the same for every batch size, so psycopg parses it once and the server
    prepares it once; a multi-row VALUES list was new text for every size (its placeholders' parsing cost
    more CPU than the rest of the listener's commit)."""
    names = ", ".join(f'"{c}"' for c in cols)
    arrays = ", ".join(_pg_array_of(dialect, table, c, c) for c in cols)
    rows = f"unnest({arrays}) WITH ORDINALITY AS u({names}, n)"
    return f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {rows} ORDER BY n {tail}"


def _insert_returning_ids(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` (multi-row statements) and return their new ids in the order given."""
    if not rows:
        return []
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        # One array per column, unnested in the order given (WITH ORDINALITY ... ORDER BY n): the ids come
        # from the sequence in that order, so sorted they are the rows' ids in the order given.
        cols = tuple(rows[0])
        sql = _pg_unnest_insert(dialect, table, cols, "RETURNING id")
        params = {c: [r[c] for r in rows] for c in cols}
        return sorted(int(i) for i in session.connection().exec_driver_sql(sql, params).scalars())
    # SQLite: SQLAlchemy would fall back to one statement per row to order RETURNING. A multi-row INSERT
    # gives each row max(rowid)+1 in turn (INTEGER PRIMARY KEY, no AUTOINCREMENT), and the write lock keeps
    # anyone else out, so the ids sorted ascending are the rows' ids in the order given.
    return sorted(int(i) for i in session.execute(insert(table).returning(table.c.id), list(rows)).scalars())


def insert_events(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Record bounce events (every ``BounceEvent`` column but ``id``); their ids, in the order given."""
    return _insert_returning_ids(session, EVENTS, rows)


def insert_trail(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Append trail entries (every ``TrailEntry`` column but ``id``); their ids, in the order given.

    The caller holds the contacts' row locks and gives each entry the next ``seq`` of its contact.
    """
    return _insert_returning_ids(session, TRAIL, rows)


def update_contacts(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Move locked contacts' current state with their new trail entries; each row:
    ``b_id, trail_seq, last_trail_id, dnc, dnc_since, dnc_source``."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        _pg_update_from_arrays(session, CONTACTS, rows)
        return
    stmt = (
        update(CONTACTS)
        .where(CONTACTS.c.id == bindparam("b_id"))
        .values(
            trail_seq=bindparam("b_trail_seq"),
            last_trail_id=bindparam("b_last_trail_id"),
            dnc=bindparam("b_dnc"),
            dnc_since=bindparam("b_dnc_since", type_=UTCDateTime()),
            dnc_source=bindparam("b_dnc_source"),
        )
    )
    session.execute(stmt, list(rows))


def claim_pending(session: Session, message_id: int | None = None) -> Message | None:
    """Lock the oldest unprocessed message (or ``message_id`` if still pending) for this transaction.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so several processes or hosts share the queue without
    waiting on each other. SQLite: the transaction already holds the single write lock.
    """
    stmt = select(Message).where(Message.state == "pending")
    if message_id is not None:
        stmt = stmt.where(Message.id == message_id)
    stmt = stmt.order_by(Message.id).limit(1).with_for_update(skip_locked=True)
    return session.execute(stmt).scalar_one_or_none()


def peek_pending(session: Session, message_id: int | None = None) -> Message | None:
    """The oldest pending message (or ``message_id`` if still pending), without locking it."""
    stmt = select(Message).where(Message.state == "pending")
    if message_id is not None:
        stmt = stmt.where(Message.id == message_id)
    return session.execute(stmt.order_by(Message.id).limit(1)).scalar_one_or_none()


def mark_failed(session: Session, message_id: int, error: str, at: datetime) -> None:
    """Park a message we failed to process: kept, shown for review, reprocessable, never retried in a loop."""
    session.execute(
        update(Message)
        .where(Message.id == message_id, Message.state != "processed")
        .values(state="failed", error=error[:2000], processed_at=at, attempts=Message.attempts + 1)
    )


def get_message(session: Session, message_id: int) -> Message:
    """One stored message, or NotFound."""
    msg = session.get(Message, message_id)
    if msg is None:
        raise NotFound(f"no message with id {message_id}")
    return msg


def messages_for_reprocess(session: Session, since: datetime | None, limit: int | None = None) -> list[int]:
    """Ids of processed or failed messages received since ``since``, oldest first."""
    stmt = select(Message.id).where(Message.state != "pending").order_by(Message.id)
    if since is not None:
        stmt = stmt.where(Message.received_at >= since)
    if limit:
        stmt = stmt.limit(limit)
    return [int(i) for i in session.execute(stmt).scalars()]


# --- contacts and the trail ----------------------------------------------------------------------


def lock_contact(session: Session, address: str, now: datetime) -> Contact:
    """Create the contact if new, then lock its row until commit (serialises DNC decisions per contact)."""
    session.execute(
        _insert(session, Contact)
        .values(address=address, dnc=False, trail_seq=0, created_at=now)
        .on_conflict_do_nothing(index_elements=["address"])
    )
    stmt = select(Contact).where(Contact.address == address).with_for_update().execution_options(populate_existing=True)
    return session.execute(stmt).scalar_one()


def find_contact(session: Session, address: str) -> Contact | None:
    """The contact with this normalised address, if any."""
    return session.execute(select(Contact).where(Contact.address == address)).scalar_one_or_none()


def last_cleared_at(session: Session, contact_id: int) -> datetime | None:
    """When DNC was last switched off for the contact (bounces before it no longer count)."""
    stmt = select(func.max(TrailEntry.at)).where(TrailEntry.contact_id == contact_id, TrailEntry.action == "off")
    return session.execute(stmt).scalar_one_or_none()


def counted_soft_arrivals(session: Session, contact_id: int, around: datetime, window_days: int) -> tuple[datetime, ...]:
    """Arrival times of counted soft bounces within ``window_days`` of ``around``, since DNC was last cleared."""
    span = timedelta(days=window_days)
    stmt = select(BounceEvent.arrived_at).where(
        BounceEvent.contact_id == contact_id,
        BounceEvent.counted.is_(True),
        BounceEvent.superseded.is_(False),
        BounceEvent.arrived_at >= around - span,
        BounceEvent.arrived_at <= around + span,
    )
    cleared = last_cleared_at(session, contact_id)
    if cleared is not None:
        stmt = stmt.where(BounceEvent.recorded_at > cleared)
    return tuple(session.execute(stmt).scalars())


def add_event(session: Session, **values: Any) -> BounceEvent:
    """Record one bounce event."""
    event = BounceEvent(superseded=False, **values)
    session.add(event)
    session.flush()
    return event


def append_trail(
    session: Session,
    contact: Contact,
    *,
    action: str,
    source: str,
    actor: str,
    note: str,
    at: datetime,
    rule: str | None = None,
    policy_rule: str | None = None,
    bounce_event_id: int | None = None,
) -> TrailEntry:
    """Append one trail entry and move the contact's current state with it (contact row must be locked)."""
    entry = TrailEntry(
        contact_id=contact.id,
        seq=contact.trail_seq + 1,
        action=action,
        source=source,
        actor=actor,
        rule=rule,
        policy_rule=policy_rule,
        note=note,
        bounce_event_id=bounce_event_id,
        at=at,
    )
    session.add(entry)
    session.flush()
    contact.trail_seq += 1
    contact.last_trail_id = entry.id
    contact.dnc = action == "on"
    contact.dnc_since = at if action == "on" else None
    contact.dnc_source = source if action == "on" else None
    session.flush()
    return entry


def contact_trail(session: Session, contact_id: int) -> list[tuple[TrailEntry, BounceEvent | None]]:
    """The full trail, oldest first, each entry with the bounce event that caused it."""
    stmt = (
        select(TrailEntry, BounceEvent)
        .outerjoin(BounceEvent, BounceEvent.id == TrailEntry.bounce_event_id)
        .where(TrailEntry.contact_id == contact_id)
        .order_by(TrailEntry.seq)
    )
    return [(t, e) for t, e in session.execute(stmt).all()]


def recent_bounces(session: Session, contact_id: int, limit: int = 20) -> list[BounceEvent]:
    """The contact's newest bounce events (by arrival), superseded ones left out."""
    stmt = (
        select(BounceEvent)
        .where(BounceEvent.contact_id == contact_id, BounceEvent.superseded.is_(False))
        .order_by(BounceEvent.arrived_at.desc(), BounceEvent.id.desc())
        .limit(limit)
    )
    return list(session.execute(stmt).scalars())


def events_of_message(session: Session, message_id: int) -> list[BounceEvent]:
    """The current (not superseded) events recorded for one message."""
    stmt = (
        select(BounceEvent)
        .where(BounceEvent.message_id == message_id, BounceEvent.superseded.is_(False))
        .order_by(BounceEvent.id)
    )
    return list(session.execute(stmt).scalars())


def supersede_events(session: Session, message_id: int) -> None:
    """Retire a message's events before a reprocess records new ones (they stay as history)."""
    session.execute(update(BounceEvent).where(BounceEvent.message_id == message_id).values(superseded=True))


def list_dnc(session: Session, limit: int = 1000) -> list[Contact]:
    """Contacts currently DNC, newest first."""
    stmt = select(Contact).where(Contact.dnc.is_(True)).order_by(Contact.dnc_since.desc(), Contact.id.desc()).limit(limit)
    return list(session.execute(stmt).scalars())


def list_bounces(
    session: Session,
    *,
    since: datetime | None = None,
    hard: bool | None = None,
    reason: str | None = None,
    contact: str | None = None,
    limit: int = 1000,
) -> list[BounceEvent]:
    """Bounce events, newest arrival first, filtered."""
    stmt: Select[BounceEvent] = select(BounceEvent).where(BounceEvent.superseded.is_(False))
    if since is not None:
        stmt = stmt.where(BounceEvent.arrived_at >= since)
    if hard is not None:
        stmt = stmt.where(BounceEvent.hard.is_(hard))
    if reason:
        stmt = stmt.where(BounceEvent.reason == reason)
    if contact:
        stmt = stmt.where(BounceEvent.recipient == contact)
    stmt = stmt.order_by(BounceEvent.arrived_at.desc(), BounceEvent.id.desc()).limit(limit)
    return list(session.execute(stmt).scalars())


def stats(session: Session, since: datetime | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Counts of events by kind, by reason (with hard/soft) and by arrival day; messages (all stored, by
    state) and the backlog of unprocessed ones (count, age of the oldest at ``now``)."""
    cond: list[ColumnElement[bool]] = [BounceEvent.superseded.is_(False)]
    if since is not None:
        cond.append(BounceEvent.arrived_at >= since)
    where = and_(*cond)
    by_kind = session.execute(select(BounceEvent.kind, func.count()).where(where).group_by(BounceEvent.kind)).all()
    by_reason = session.execute(
        select(BounceEvent.reason, BounceEvent.hard, func.count()).where(where).group_by(BounceEvent.reason, BounceEvent.hard)
    ).all()
    day = func.date(BounceEvent.arrived_at) if session.get_bind().dialect.name == "sqlite" else func.to_char(
        func.timezone("UTC", BounceEvent.arrived_at), "YYYY-MM-DD"
    )
    by_day = session.execute(select(day, func.count()).where(where).group_by(day).order_by(day)).all()
    states = session.execute(select(Message.state, func.count()).group_by(Message.state)).all()
    oldest = session.execute(select(func.min(Message.received_at)).where(Message.state == "pending")).scalar_one_or_none()
    dnc = session.execute(select(func.count()).select_from(Contact).where(Contact.dnc.is_(True))).scalar_one()
    by_state = {str(s): int(n) for s, n in states}
    age = None
    if oldest is not None:
        # min() loses the column type on SQLite (naive text back): read it as UTC, as UTCDateTime does.
        when = oldest if isinstance(oldest, datetime) else datetime.fromisoformat(str(oldest))
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
        age = round(max(0.0, ((now or datetime.now(UTC)) - when).total_seconds()), 3)
    return {
        "by_kind": {str(k): int(n) for k, n in by_kind},
        "by_reason": sorted(
            ({"reason": r, "hard": bool(h), "count": int(n)} for r, h, n in by_reason), key=lambda x: (-x["count"], x["reason"])
        ),
        "by_day": {str(d): int(n) for d, n in by_day},
        "messages": sum(by_state.values()),
        "messages_by_state": by_state,
        "backlog": {"count": by_state.get("pending", 0), "oldest_age_seconds": age},
        "dnc_contacts": int(dnc),
    }


def failed_or_pending(session: Session, limit: int = 100) -> list[Message]:
    """Messages still waiting or parked as failed, oldest first."""
    stmt = select(Message).where(or_(Message.state == "failed", Message.state == "pending")).order_by(Message.id).limit(limit)
    return list(session.execute(stmt).scalars())
