"""The unit of work: one stored message -> analyze -> bounce events -> policy -> DNC trail, in ONE transaction.

Shared by the daemon's processing loop (``process_pending``), ``bouncd ingest`` (``ingest_message``), and
``bouncd reprocess`` (``reprocess``). If processing raises, the message stays stored and is marked
``failed`` with the error: it is shown for review and can be reprocessed, never retried in a loop, never lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from bouncd.address import normalize_address
from bouncd.analyze import analyze
from bouncd.config import Settings
from bouncd.db import repo
from bouncd.db.models import BounceEvent, Message
from bouncd.db.session import transaction, writer
from bouncd.errors import StoreError
from bouncd.policy import Decision, History, Observation, decide
from bouncd.records import Inbound, RecipientResult, Report

log = structlog.get_logger("bouncd.ingest")

LIVE_PROTOCOLS = frozenset({"smtp", "lmtp"})  # the receipt time is the arrival time
SYSTEM_ACTOR = "bouncd"


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """One recorded recipient result and what the policy made of it."""

    recipient: str | None
    kind: str
    reason: str
    hard: bool
    status: str | None
    rule: str
    policy_rule: str
    counted: bool
    dnc_raised: bool
    note: str
    event_id: int


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What storing and processing one message did."""

    message_id: int
    duplicate: bool
    state: str  # processed | failed | pending (claimed by another worker)
    kind: str | None = None
    error: str | None = None
    arrived_at: datetime | None = None
    events: tuple[EventOutcome, ...] = ()

    @property
    def dnc_raised(self) -> tuple[str, ...]:
        """Addresses this message switched to DNC."""
        return tuple(e.recipient for e in self.events if e.dnc_raised and e.recipient)


@dataclass(frozen=True, slots=True)
class Processed:
    """The outcome of processing one claimed message inside its transaction."""

    kind: str
    arrived_at: datetime
    events: tuple[EventOutcome, ...] = field(default_factory=tuple)


def verify_return_path(settings: Settings, rcpt_tos: Sequence[str]) -> str | None:
    """The contact named by a validly signed envelope recipient (bouncd.verp), or None."""
    try:
        from bouncd import verp
    except ImportError:  # pragma: no cover - seam for builds without signed return paths
        return None
    for rcpt in rcpt_tos:
        contact = verp.verify(settings.verp, rcpt)
        if contact:
            return contact
    return None


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def header_date(raw: bytes) -> datetime | None:
    """The message's own ``Date:`` header (RFC 5322 §3.6.1), or None when absent or unreadable."""
    try:
        value = BytesHeaderParser().parsebytes(raw).get("Date")
        return _aware(parsedate_to_datetime(str(value))) if value else None
    except (TypeError, ValueError, IndexError):
        return None


def arrival_time(msg: Message, report: Report, raw: bytes) -> datetime:
    """The time policy windows count: operator override, receipt time for live mail, else Arrival-Date, Date."""
    if msg.arrival_override is not None:
        return msg.arrival_override
    if msg.protocol in LIVE_PROTOCOLS:
        return msg.received_at
    if report.arrival_date is not None:
        return _aware(report.arrival_date)
    return header_date(raw) or msg.received_at


def _observation(result: RecipientResult, recipient: str | None, report: Report, arrived: datetime) -> Observation:
    return Observation(
        recipient=recipient,
        kind=str(report.kind),
        action=result.action,
        hard=result.hard,
        reason=result.reason,
        rule=result.rule,
        arrived_at=arrived,
        status=result.status,
        diagnostic=result.diagnostic,
        reply_code=result.reply_code,
    )


def record_message(
    session: Session,
    msg: Message,
    settings: Settings,
    now: datetime,
    *,
    trail_source: str | None = None,
    actor: str = SYSTEM_ACTOR,
    report: Report | None = None,
) -> Processed:
    """Analyze one locked message (unless ``report`` is given) and record its events and DNC changes in ``session``.

    ``trail_source`` overrides the trail source (``reprocess``); the policy's own source is kept in the note.
    """
    raw = repo.raw_bytes(msg)
    rcpts = [r for r in msg.rcpt_tos.split("\n") if r]
    if report is None:
        report = analyze(raw, rcpts[0] if rcpts else None)
    arrived = arrival_time(msg, report, raw)
    verified = verify_return_path(settings, rcpts)
    signed = verified is not None

    recipients = [_fit_address(normalize_address(r.recipient)) or verified for r in report.results]
    # Lock every contact of this message in one order, so two workers never wait on each other in a cycle.
    contacts = {a: repo.lock_contact(session, a, now) for a in sorted({a for a in recipients if a})}

    outcomes: list[EventOutcome] = []
    for result, address in zip(report.results, recipients, strict=True):
        contact = contacts.get(address) if address else None
        obs = _observation(result, address, report, arrived)
        if contact is not None:
            arrivals = repo.counted_soft_arrivals(session, contact.id, arrived, settings.policy.soft_window_days)
            history = History(dnc=contact.dnc, soft_arrivals=arrivals)
        else:
            history = History()
        decision = decide(obs, history, settings.policy, now, signed=signed, verified_contact=verified)
        contact_id = contact.id if contact else None
        event = _record_event(session, msg, report, result, contact_id, address, arrived, now, signed, decision)
        if decision.raise_dnc and contact is not None and decision.source:
            source = trail_source or decision.source
            note = decision.note if source == decision.source else f"{decision.source}: {decision.note}"
            repo.append_trail(
                session,
                contact,
                action="on",
                source=source,
                actor=actor,
                note=note,
                at=now,
                rule=result.rule,
                policy_rule=decision.rule,
                bounce_event_id=event.id,
            )
            log.info("dnc.raised", contact=address, source=source, rule=result.rule, policy=decision.rule, message_id=msg.id)
        outcomes.append(
            EventOutcome(
                recipient=address,
                kind=str(report.kind),
                reason=result.reason,
                hard=result.hard,
                status=result.status,
                rule=result.rule,
                policy_rule=decision.rule,
                counted=decision.counts,
                dnc_raised=decision.raise_dnc and contact is not None,
                note=decision.note,
                event_id=event.id,
            )
        )

    msg.state = "processed"
    msg.kind = str(report.kind)
    msg.detector = report.detector
    msg.parse_error = report.error
    msg.error = None
    msg.signed = signed
    msg.arrived_at = arrived
    msg.processed_at = now
    msg.attempts += 1
    session.flush()
    return Processed(kind=str(report.kind), arrived_at=arrived, events=tuple(outcomes))


def _fit_address(address: str | None) -> str | None:
    # RFC 5321 §4.5.3.1: 64 + 1 + 255 octets at most; anything longer is garbage read from a broken report.
    return address if address and len(address) <= 320 else None


def _cut(value: str | None, size: int) -> str | None:
    # Detectors read these from untrusted text: never let an over-long value fail the whole message.
    return value[:size] if value else value


def _record_event(
    session: Session,
    msg: Message,
    report: Report,
    result: RecipientResult,
    contact_id: int | None,
    address: str | None,
    arrived: datetime,
    now: datetime,
    signed: bool,
    decision: Decision,
) -> BounceEvent:
    return repo.add_event(
        session,
        message_id=msg.id,
        contact_id=contact_id,
        recipient=address,
        kind=str(report.kind),
        action=_cut(result.action, 32),
        hard=result.hard,
        reason=_cut(result.reason, 32) or "undefined",
        status=_cut(result.status, 16),
        reply_code=_cut(result.reply_code, 8),
        diagnostic=result.diagnostic,
        remote_mta=result.remote_mta,
        command=_cut(result.command, 8),
        rule=_cut(result.rule, 64) or "",
        evidence=result.evidence,
        original_message_id=report.original_message_id,
        arrived_at=arrived,
        recorded_at=now,
        signed=signed,
        counted=decision.counts,
        policy_rule=decision.rule,
    )


def process_one(
    engine: Engine, settings: Settings, *, message_id: int | None = None, now: datetime | None = None
) -> IngestResult | None:
    """Claim and process the oldest pending message (or ``message_id``); None when there is nothing to claim."""
    clock = now or datetime.now(UTC)
    requested = message_id
    claimed: int | None = None
    report: Report | None = None
    try:
        if engine.dialect.name == "sqlite":
            # SQLite has one write lock for the whole database: parse before taking it, so that the
            # listener's commits (and its 250s) never wait for our parsing. Parsing is pure, so the
            # result is the same whenever it runs.
            with transaction(engine, readonly=True) as session:
                peeked = repo.peek_pending(session, message_id)
            if peeked is None:
                return None
            claimed = message_id = peeked.id
            rcpts = [r for r in peeked.rcpt_tos.split("\n") if r]
            report = analyze(repo.raw_bytes(peeked), rcpts[0] if rcpts else None)
        outcome: tuple[int, Processed] | None = None
        with transaction(engine) as session:
            msg = repo.claim_pending(session, message_id)
            if msg is not None:
                claimed = msg.id
                outcome = (msg.id, record_message(session, msg, settings, clock, report=report))
        if outcome is None:
            # Nothing pending, or taken by another process since the peek: look again (lock released).
            return None if report is None or requested is not None else process_one(engine, settings, now=now)
        done_id, done = outcome
        return IngestResult(done_id, False, "processed", done.kind, None, done.arrived_at, done.events)
    except Exception as exc:  # the worker edge: our failure must park the message, never lose it
        if claimed is None or _is_outage(exc):
            raise  # database unreachable: the message stays pending (rolled back) and is tried again later
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        log.exception("message.failed", message_id=claimed, error=error)
        with transaction(engine) as session:
            repo.mark_failed(session, claimed, error, clock)
        return IngestResult(claimed, False, "failed", error=error)


def _is_outage(exc: BaseException) -> bool:
    """True for a lost connection or timeout (retry later), False for a failure of this message (park it)."""
    return isinstance(exc, StoreError) and isinstance(exc.__cause__, OperationalError | InterfaceError)


def process_pending(engine: Engine, settings: Settings, *, limit: int = 100, now: datetime | None = None) -> int:
    """Process up to ``limit`` stored messages, oldest first, one transaction each; returns how many were handled."""
    handled = 0
    while handled < limit:
        if process_one(engine, settings, now=now) is None:
            break
        handled += 1
    return handled


def ingest_message(
    engine: Engine,
    settings: Settings,
    inbound: Inbound,
    *,
    now: datetime | None = None,
    arrival_override: datetime | None = None,
) -> IngestResult:
    """Store one message durably, then process it; the same bytes again change nothing."""
    with transaction(engine) as session:
        ref = repo.store_inbound(session, [inbound])[0]
        if arrival_override is not None and not ref.duplicate:
            repo.set_arrival_override(session, ref.message_id, _aware(arrival_override))
    if ref.duplicate:
        with transaction(engine, readonly=True) as session:
            state = repo.get_message(session, ref.message_id).state
        return IngestResult(ref.message_id, True, state)
    result = process_one(engine, settings, message_id=ref.message_id, now=now)
    if result is None:  # another worker claimed it between our two transactions
        return IngestResult(ref.message_id, False, "pending")
    return result


# --- reprocess -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One difference a reprocess found (or made)."""

    message_id: int
    recipient: str | None
    what: str  # verdict | dnc | state
    before: str
    after: str


def _verdict(reason: str, hard: bool, rule: str) -> str:
    return f"{'hard' if hard else 'soft'} {reason} ({rule})"


def reprocess_message(session: Session, message_id: int, settings: Settings, now: datetime, actor: str) -> list[Change]:
    """Re-run one stored message through the current rules inside ``session``; return what changed."""
    msg = repo.get_message(session, message_id)
    old = repo.events_of_message(session, message_id)
    old_verdicts = {(e.recipient, _verdict(e.reason, e.hard, e.rule)) for e in old}
    report = analyze(repo.raw_bytes(msg), msg.rcpt_tos.split("\n")[0] or None)
    new_verdicts = {(normalize_address(r.recipient), _verdict(r.reason, r.hard, r.rule)) for r in report.results}
    changes: list[Change] = []
    # Replay inside a savepoint: kept only if a verdict or a DNC state changed, so unchanged messages
    # do not pile up superseded copies of the same events.
    savepoint = session.begin_nested()
    if msg.state != "processed":
        changes.append(Change(message_id, None, "state", msg.state, "processed"))
    before = {r: v for r, v in old_verdicts}
    after = {r: v for r, v in new_verdicts}
    for rcpt in sorted(set(before) | set(after), key=lambda r: r or ""):
        if before.get(rcpt) != after.get(rcpt):
            changes.append(Change(message_id, rcpt, "verdict", before.get(rcpt, "-"), after.get(rcpt, "-")))
    # Contacts whose DNC rests on one of this message's old events: undone if the new verdicts do not hold it up.
    caused = {e.id: e for e in old}
    repo.supersede_events(session, message_id)
    done = record_message(session, msg, settings, now, trail_source="reprocess", actor=actor)
    for ev in done.events:
        if ev.dnc_raised:
            changes.append(Change(message_id, ev.recipient, "dnc", "off", "on"))
    raised_now = {ev.recipient for ev in done.events if ev.dnc_raised or ev.policy_rule == "policy.already_dnc"}
    for contact_address in sorted({e.recipient for e in old if e.recipient}):
        contact = repo.lock_contact(session, contact_address, now)
        if not contact.dnc or contact_address in raised_now or contact.last_trail_id is None:
            continue
        trail = repo.contact_trail(session, contact.id)
        latest, cause = trail[-1]
        automatic = latest.source not in ("manual", "unsubscribe")
        if latest.action == "on" and automatic and cause is not None and cause.id in caused:
            repo.append_trail(
                session,
                contact,
                action="off",
                source="reprocess",
                actor=actor,
                note=f"verdict changed on reprocess: now {after.get(contact_address, 'no result')}",
                at=now,
                policy_rule="policy.reprocess",
            )
            changes.append(Change(message_id, contact_address, "dnc", "on", "off"))
    if changes:
        savepoint.commit()
    else:
        savepoint.rollback()
    return changes


def reprocess(
    engine: Engine,
    settings: Settings,
    *,
    since: datetime | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    actor: str = "reprocess",
) -> list[Change]:
    """Replay stored messages through the current rules, one transaction each; dry-run rolls every one back.

    Each message is previewed on its own (a long single transaction would hold SQLite's write lock and
    make the listener answer 451), so a dry run does not see earlier messages' would-be changes.
    """
    clock = now or datetime.now(UTC)
    with transaction(engine, readonly=True) as session:
        ids = repo.messages_for_reprocess(session, since)
    changes: list[Change] = []
    for message_id in ids:
        session = Session(writer(engine), expire_on_commit=False)
        try:
            session.begin()
            found = reprocess_message(session, message_id, settings, clock, actor)
            if dry_run:
                session.rollback()  # the same work as applying, undone: the preview cannot drift from the real thing
            else:
                session.commit()
            changes.extend(found)
        except StoreError:
            session.rollback()
            raise
        except Exception as exc:  # one bad message must not stop the replay; it keeps its old results
            session.rollback()
            log.exception("reprocess.failed", message_id=message_id)
            changes.append(Change(message_id, None, "error", "", f"{type(exc).__name__}: {exc}".splitlines()[0][:300]))
        finally:
            session.close()
    return changes
