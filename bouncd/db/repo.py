"""Every SQL statement bouncd runs. Functions take a session; the caller owns the transaction."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bouncd.db.models import BounceEvent, Contact, Message, TrailEntry
from bouncd.db.session import describe_db_error
from bouncd.errors import NotFound, StoreError
from bouncd.records import Inbound

__all__ = [
    "StoredRef",
    "add_event",
    "append_trail",
    "claim_pending",
    "contact_trail",
    "counted_soft_arrivals",
    "find_contact",
    "get_message",
    "list_bounces",
    "list_dnc",
    "lock_contact",
    "mark_failed",
    "raw_bytes",
    "recent_bounces",
    "stats",
    "store_inbound",
    "store_inbound_batch",
]


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
                    raw_z=zlib.compress(item.raw, 6),
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
            rows.append(
                {
                    "sha256": digest,
                    "raw_z": zlib.compress(item.raw, 6),
                    "raw_size": len(item.raw),
                    "mail_from": item.mail_from,
                    "rcpt_tos": "\n".join(item.rcpt_tos),
                    "peer": item.peer,
                    "protocol": item.protocol,
                    "received_at": item.received_at,
                    "state": "pending",
                    "attempts": 0,
                }
            )
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


def set_arrival_override(session: Session, message_id: int, at: datetime) -> None:
    """Record the operator's ``--received-at`` for a message (used instead of the report's dates)."""
    session.execute(update(Message).where(Message.id == message_id).values(arrival_override=at))


def raw_bytes(message: Message) -> bytes:
    """The message exactly as received."""
    return zlib.decompress(message.raw_z)


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


def stats(session: Session, since: datetime | None = None) -> dict[str, Any]:
    """Counts of events by kind, by reason (with hard/soft) and by arrival day; messages by state."""
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
    dnc = session.execute(select(func.count()).select_from(Contact).where(Contact.dnc.is_(True))).scalar_one()
    return {
        "by_kind": {str(k): int(n) for k, n in by_kind},
        "by_reason": sorted(
            ({"reason": r, "hard": bool(h), "count": int(n)} for r, h, n in by_reason), key=lambda x: (-x["count"], x["reason"])
        ),
        "by_day": {str(d): int(n) for d, n in by_day},
        "messages": {str(s): int(n) for s, n in states},
        "dnc_contacts": int(dnc),
    }


def failed_or_pending(session: Session, limit: int = 100) -> list[Message]:
    """Messages still waiting or parked as failed, oldest first."""
    stmt = select(Message).where(or_(Message.state == "failed", Message.state == "pending")).order_by(Message.id).limit(limit)
    return list(session.execute(stmt).scalars())
