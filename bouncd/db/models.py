"""ORM models: contacts, stored messages, bounce events and the append-only DNC trail.

The schema itself is created by the Alembic migrations in ``bouncd/db/migrations``; these classes
describe it for queries, and a test checks that the two never drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit keys.
BigId = BigInteger().with_variant(Integer(), "sqlite")

MESSAGE_STATES = ("pending", "processed", "failed")
TRAIL_ACTIONS = ("on", "off")
TRAIL_SOURCES = ("hard_bounce", "soft_bounces", "complaint", "unsubscribe", "manual", "reprocess")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores naive text, so we add UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Always hand back an aware UTC datetime."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base for every bouncd table."""


class Message(Base):
    """One received message exactly as it arrived, compressed, with its envelope and processing outcome."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'processed', 'failed')", name="ck_messages_state"),
        Index("ix_messages_state_id", "state", "id"),
        Index("ix_messages_received_at", "received_at"),
        UniqueConstraint("sha256", name="uq_messages_sha256"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64))
    raw_z: Mapped[bytes] = mapped_column(LargeBinary)  # the raw bytes, kept as evidence: zlib, or plain (repo.pack_raw)
    raw_size: Mapped[int] = mapped_column(Integer)
    mail_from: Mapped[str | None] = mapped_column(Text)
    rcpt_tos: Mapped[str] = mapped_column(Text, default="")  # envelope recipients, newline-separated
    peer: Mapped[str | None] = mapped_column(Text)
    protocol: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    arrival_override: Mapped[datetime | None] = mapped_column(UTCDateTime)  # --received-at given by an operator
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the time policy windows count
    state: Mapped[str] = mapped_column(String(16), default="pending")
    kind: Mapped[str | None] = mapped_column(String(16))
    detector: Mapped[str | None] = mapped_column(String(64))
    parse_error: Mapped[str | None] = mapped_column(Text)  # the parser's words when it found nothing usable
    error: Mapped[str | None] = mapped_column(Text)  # our own failure while processing (state = failed)
    signed: Mapped[bool | None] = mapped_column(Boolean)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Contact(Base):
    """A recipient address and its current Do-Not-Contact state (the trail is the history)."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("address", name="uq_contacts_address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(320))  # normalised: bouncd.address
    external_id: Mapped[str | None] = mapped_column(String(200), index=True)
    dnc: Mapped[bool] = mapped_column(Boolean, default=False)
    dnc_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dnc_source: Mapped[str | None] = mapped_column(String(32))
    last_trail_id: Mapped[int | None] = mapped_column(BigId)  # newest trail entry, for the status view
    trail_seq: Mapped[int] = mapped_column(Integer, default=0)  # number of trail entries so far
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BounceEvent(Base):
    """One recipient result of one message, with the verdict and what the policy made of it."""

    __tablename__ = "bounce_events"
    __table_args__ = (
        Index("ix_bounce_events_contact_arrived", "contact_id", "arrived_at"),
        Index("ix_bounce_events_arrived", "arrived_at"),
        Index("ix_bounce_events_message", "message_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", name="fk_bounce_events_message"))
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contacts.id", name="fk_bounce_events_contact"))
    recipient: Mapped[str | None] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str | None] = mapped_column(String(32))
    hard: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str | None] = mapped_column(String(16))
    reply_code: Mapped[str | None] = mapped_column(String(8))
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    remote_mta: Mapped[str | None] = mapped_column(Text)
    command: Mapped[str | None] = mapped_column(String(8))
    rule: Mapped[str] = mapped_column(String(64))
    evidence: Mapped[str] = mapped_column(Text, default="")
    original_message_id: Mapped[str | None] = mapped_column(Text)
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    signed: Mapped[bool] = mapped_column(Boolean, default=False)
    counted: Mapped[bool] = mapped_column(Boolean, default=False)  # counts toward the soft-bounce threshold
    policy_rule: Mapped[str] = mapped_column(String(64))  # what the policy decided, and why
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)  # replaced by a reprocess


class TrailEntry(Base):
    """One append-only DNC trail entry: DNC switched on or off, by whom, why, and on what evidence."""

    __tablename__ = "dnc_trail"
    __table_args__ = (
        UniqueConstraint("contact_id", "seq", name="uq_dnc_trail_contact_seq"),
        CheckConstraint("action IN ('on', 'off')", name="ck_dnc_trail_action"),
        CheckConstraint(
            "source IN ('hard_bounce', 'soft_bounces', 'complaint', 'unsubscribe', 'manual', 'reprocess')",
            name="ck_dnc_trail_source",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", name="fk_dnc_trail_contact"))
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per contact; unique, so racing writers cannot both append
    action: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    rule: Mapped[str | None] = mapped_column(String(64))  # classifier rule id of the causing verdict
    policy_rule: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")  # the reason in words
    bounce_event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("bounce_events.id", name="fk_dnc_trail_event"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
