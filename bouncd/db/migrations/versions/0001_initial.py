"""Initial schema: messages, contacts, bounce events, the append-only DNC trail and the contact_status view.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

# The trail is evidence: once written it is never changed or removed, whoever asks (enforced by the
# database itself, so that other apps sharing it cannot rewrite history either).
PG_TRAIL_GUARD = """
CREATE FUNCTION bouncd_dnc_trail_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dnc_trail is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER dnc_trail_no_update BEFORE UPDATE OR DELETE ON dnc_trail
    FOR EACH ROW EXECUTE FUNCTION bouncd_dnc_trail_append_only();
CREATE TRIGGER dnc_trail_no_truncate BEFORE TRUNCATE ON dnc_trail
    FOR EACH STATEMENT EXECUTE FUNCTION bouncd_dnc_trail_append_only();
"""

SQLITE_TRAIL_GUARD = (
    "CREATE TRIGGER dnc_trail_no_update BEFORE UPDATE ON dnc_trail "
    "BEGIN SELECT RAISE(ABORT, 'dnc_trail is append-only: UPDATE refused'); END",
    "CREATE TRIGGER dnc_trail_no_delete BEFORE DELETE ON dnc_trail "
    "BEGIN SELECT RAISE(ABORT, 'dnc_trail is append-only: DELETE refused'); END",
)

# The stable read contract for other apps (README: "Schema contract"). Add columns at the end only.
STATUS_VIEW = """
CREATE VIEW contact_status AS
SELECT c.address AS address,
       c.external_id AS external_id,
       c.dnc AS dnc,
       c.dnc_since AS since,
       CASE WHEN c.dnc THEN c.dnc_source END AS source,
       CASE WHEN c.dnc THEN t.note END AS reason,
       t.at AS changed_at
FROM contacts c
LEFT JOIN dnc_trail t ON t.id = c.last_trail_id
"""


def upgrade() -> None:
    """Create every table, index, trigger and the view."""
    op.create_table(
        "messages",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("raw_z", sa.LargeBinary(), nullable=False),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        sa.Column("mail_from", sa.Text()),
        sa.Column("rcpt_tos", sa.Text(), nullable=False),
        sa.Column("peer", sa.Text()),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("arrival_override", TS),
        sa.Column("arrived_at", TS),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16)),
        sa.Column("detector", sa.String(64)),
        sa.Column("parse_error", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("signed", sa.Boolean()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("processed_at", TS),
        sa.CheckConstraint("state IN ('pending', 'processed', 'failed')", name="ck_messages_state"),
        sa.UniqueConstraint("sha256", name="uq_messages_sha256"),
    )
    op.create_index("ix_messages_state_id", "messages", ["state", "id"])
    op.create_index("ix_messages_received_at", "messages", ["received_at"])

    op.create_table(
        "contacts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("external_id", sa.String(200)),
        sa.Column("dnc", sa.Boolean(), nullable=False),
        sa.Column("dnc_since", TS),
        sa.Column("dnc_source", sa.String(32)),
        sa.Column("last_trail_id", BigId),
        sa.Column("trail_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("address", name="uq_contacts_address"),
    )
    op.create_index("ix_contacts_external_id", "contacts", ["external_id"])

    op.create_table(
        "bounce_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("message_id", BigId, sa.ForeignKey("messages.id", name="fk_bounce_events_message"), nullable=False),
        sa.Column("contact_id", BigId, sa.ForeignKey("contacts.id", name="fk_bounce_events_contact")),
        sa.Column("recipient", sa.String(320)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32)),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16)),
        sa.Column("reply_code", sa.String(8)),
        sa.Column("diagnostic", sa.Text(), nullable=False),
        sa.Column("remote_mta", sa.Text()),
        sa.Column("command", sa.String(8)),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("original_message_id", sa.Text()),
        sa.Column("arrived_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("signed", sa.Boolean(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("policy_rule", sa.String(64), nullable=False),
        sa.Column("superseded", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_bounce_events_contact_arrived", "bounce_events", ["contact_id", "arrived_at"])
    op.create_index("ix_bounce_events_arrived", "bounce_events", ["arrived_at"])
    op.create_index("ix_bounce_events_message", "bounce_events", ["message_id"])

    op.create_table(
        "dnc_trail",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("contact_id", BigId, sa.ForeignKey("contacts.id", name="fk_dnc_trail_contact"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(3), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(64)),
        sa.Column("policy_rule", sa.String(64)),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("bounce_event_id", BigId, sa.ForeignKey("bounce_events.id", name="fk_dnc_trail_event")),
        sa.Column("at", TS, nullable=False),
        sa.UniqueConstraint("contact_id", "seq", name="uq_dnc_trail_contact_seq"),
        sa.CheckConstraint("action IN ('on', 'off')", name="ck_dnc_trail_action"),
        sa.CheckConstraint(
            "source IN ('hard_bounce', 'soft_bounces', 'complaint', 'unsubscribe', 'manual', 'reprocess')",
            name="ck_dnc_trail_source",
        ),
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_TRAIL_GUARD)
    else:
        for stmt in SQLITE_TRAIL_GUARD:
            op.execute(stmt)
    op.execute(STATUS_VIEW)


def downgrade() -> None:
    """Drop everything this migration created (the trail guard goes with its table)."""
    op.execute("DROP VIEW contact_status")
    op.drop_table("dnc_trail")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION bouncd_dnc_trail_append_only()")
    op.drop_table("bounce_events")
    op.drop_table("contacts")
    op.drop_table("messages")
