"""The unit of work: stored messages -> analyze -> bounce events -> policy -> DNC trail.

Shared by the daemon's processing loop (``process_pending``), ``bouncd ingest`` (``ingest_message``), and
``bouncd reprocess`` (``reprocess``). The loop claims a batch of unprocessed messages, oldest first, and
records them in ONE transaction with one commit (a commit per message, with its fsync, was most of the
cost: issue 4 asks for >= 1,000 msgs/s). Within the batch every message stands alone: if its processing
raises, it is rolled back to its savepoint and marked ``failed`` with the error (shown for review,
reprocessable, never retried in a loop, never lost) while the others commit.

Per batch, the database sees a handful of statements whatever its size: the contacts of the whole batch
created and locked in one order (so concurrent workers cannot deadlock, and two bounces for one contact
still raise DNC once), the soft-bounce history of only the contacts whose result can count, then one
multi-row INSERT each for events and trail entries and one executemany UPDATE each for contacts and
messages. The policy sees each message's history as if the batch's earlier messages were already stored:
messages are decided in order against an in-batch copy of each contact's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from bouncd.address import normalize_address
from bouncd.analyze import analyze
from bouncd.config import Settings
from bouncd.db import repo
from bouncd.db.models import Message
from bouncd.db.session import transaction, writer
from bouncd.errors import StoreError
from bouncd.policy import History, Observation, decide
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
    source: str | None = None  # trail source when dnc_raised


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


class Arriving(Protocol):
    """What ``arrival_time`` reads of a stored message (the ORM row or a ``repo.PendingMessage``)."""

    @property
    def arrival_override(self) -> datetime | None:
        """The operator's ``--received-at``."""

    @property
    def protocol(self) -> str:
        """How the message came in (smtp, lmtp, cli ...)."""

    @property
    def received_at(self) -> datetime:
        """When we stored it."""


def arrival_time(msg: Arriving, report: Report, raw: bytes) -> datetime:
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


def _fit_address(address: str | None) -> str | None:
    # RFC 5321 §4.5.3.1: 64 + 1 + 255 octets at most; anything longer is garbage read from a broken report.
    return address if address and len(address) <= 320 else None


def _cut(value: str | None, size: int | None = None) -> str | None:
    # Detectors read these from untrusted text: never let an over-long value fail the whole message.
    # PostgreSQL text cannot hold U+0000, which broken MTAs copy into diagnostics: mark it instead.
    if not value:
        return value
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return value[:size] if size else value


def _error_text(exc: BaseException) -> str:
    return _cut(f"{type(exc).__name__}: {exc}".splitlines()[0], 500) or type(exc).__name__


def _is_outage(exc: BaseException) -> bool:
    """True for a lost connection, lock timeout or deadlock (retry later), False for a failure of this message (park it)."""
    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    return isinstance(cause, OperationalError | InterfaceError)


# --- one batch, inside the caller's transaction ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Work:
    """A claimed message and its analysis (or the error that stopped it)."""

    msg: repo.PendingMessage
    raw: bytes
    report: Report | None
    error: BaseException | None = None
    packed: bytes | None = None  # the compressed bytes, for a message the listener stored plain


def _analyze(msg: repo.PendingMessage) -> _Work:
    """Parse and classify one stored message; pure, so it may run before or inside the transaction."""
    raw = repo.raw_bytes(msg)
    packed = repo.pack_raw(raw) if repo.is_plain(msg.raw_z) else None
    try:
        rcpts = [r for r in msg.rcpt_tos.split("\n") if r]
        return _Work(msg, raw, analyze(raw, rcpts[0] if rcpts else None), packed=packed)
    except Exception as exc:  # our parser's bug: this message is parked, the batch goes on
        return _Work(msg, raw, None, exc, packed)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A message ready for the policy: when it arrived, its signature, and the contact of each result."""

    msg: repo.PendingMessage
    report: Report
    arrived: datetime
    signed: bool
    verified: str | None
    recipients: tuple[str | None, ...]
    packed: bytes | None = None  # the compressed bytes, for a message the listener stored plain

    def observations(self) -> list[Observation]:
        """The policy's view of each recipient result, in report order."""
        return [
            _observation(result, address, self.report, self.arrived)
            for result, address in zip(self.report.results, self.recipients, strict=True)
        ]


def _prepare(work: _Work, settings: Settings) -> _Prepared:
    assert work.report is not None
    msg, report = work.msg, work.report
    arrived = arrival_time(msg, report, work.raw)
    verified = verify_return_path(settings, [r for r in msg.rcpt_tos.split("\n") if r])
    recipients = tuple(_fit_address(normalize_address(r.recipient)) or verified for r in report.results)
    return _Prepared(msg, report, arrived, verified is not None, verified, recipients, work.packed)


@dataclass(slots=True)
class _ContactState:
    """A locked contact as the batch has left it so far (the database row plus this batch's decisions)."""

    id: int
    dnc: bool
    trail_seq: int
    soft: list[datetime]  # counted soft arrivals (only loaded for contacts whose results can count)


@dataclass(slots=True)
class _Plan:
    """The rows one message will write, decided before any of them is written."""

    prep: _Prepared
    events: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    trail: list[tuple[int, _ContactState, dict[str, Any]]] = field(default_factory=list)  # (event index, contact, row)


def _plan(
    prep: _Prepared, contacts: dict[str, _ContactState], settings: Settings, now: datetime, trail_source: str | None, actor: str
) -> _Plan:
    """Decide every result of one message in order, moving the in-batch contact states with it."""
    plan = _Plan(prep)
    report, kind = prep.report, str(prep.report.kind)
    for result, obs in zip(report.results, prep.observations(), strict=True):
        address = obs.recipient
        contact = contacts.get(address) if address else None
        history = History(dnc=contact.dnc, soft_arrivals=tuple(contact.soft)) if contact else History()
        decision = decide(obs, history, settings.policy, now, signed=prep.signed, verified_contact=prep.verified)
        rule = _cut(result.rule, 64) or ""
        plan.events.append(
            {
                "message_id": prep.msg.id,
                "contact_id": contact.id if contact else None,
                "recipient": address,
                "kind": kind,
                "action": _cut(result.action, 32),
                "hard": result.hard,
                "reason": _cut(result.reason, 32) or "undefined",
                "status": _cut(result.status, 16),
                "reply_code": _cut(result.reply_code, 8),
                "diagnostic": _cut(result.diagnostic) or "",
                "remote_mta": _cut(result.remote_mta),
                "command": _cut(result.command, 8),
                "rule": rule,
                "evidence": _cut(result.evidence) or "",
                "original_message_id": _cut(report.original_message_id),
                "arrived_at": prep.arrived,
                "recorded_at": now,
                "signed": prep.signed,
                "counted": decision.counts,
                "policy_rule": decision.rule,
                "superseded": False,
            }
        )
        raised = decision.raise_dnc and contact is not None and decision.source is not None
        source = None
        if contact is not None and decision.counts:
            contact.soft.append(prep.arrived)  # the next result for this contact sees this one
        if raised and contact is not None and decision.source:
            source = trail_source or decision.source
            note = decision.note if source == decision.source else f"{decision.source}: {decision.note}"
            contact.dnc = True
            contact.trail_seq += 1
            row = {
                "contact_id": contact.id,
                "seq": contact.trail_seq,
                "action": "on",
                "source": source,
                "actor": actor,
                "rule": rule,
                "policy_rule": decision.rule,
                "note": _cut(note) or "",
                "bounce_event_id": None,
                "at": now,
            }
            plan.trail.append((len(plan.events) - 1, contact, row))
        plan.outcomes.append(
            {
                "recipient": address,
                "kind": kind,
                "reason": result.reason,
                "hard": result.hard,
                "status": result.status,
                "rule": result.rule,
                "policy_rule": decision.rule,
                "counted": decision.counts,
                "dnc_raised": raised,
                "note": decision.note,
                "source": source,
            }
        )
    return plan


def _write(session: Session, plans: Sequence[_Plan], now: datetime) -> dict[int, Processed]:
    """Write the planned rows of ``plans``: one statement per table for all of them."""
    event_ids = repo.insert_events(session, [row for plan in plans for row in plan.events])
    trail_rows: list[dict[str, Any]] = []
    trail_contacts: list[_ContactState] = []
    offset = 0
    firsts: list[int] = []
    for plan in plans:
        firsts.append(offset)
        for index, contact, row in plan.trail:
            row["bounce_event_id"] = event_ids[offset + index]
            trail_rows.append(row)
            trail_contacts.append(contact)
        offset += len(plan.events)
    trail_ids = repo.insert_trail(session, trail_rows)
    # One raise per contact per batch at most (it is DNC afterwards), but key by contact to be sure.
    moved: dict[int, dict[str, Any]] = {}
    for contact, row, trail_id in zip(trail_contacts, trail_rows, trail_ids, strict=True):
        moved[contact.id] = {
            "b_id": contact.id,
            "b_trail_seq": row["seq"],
            "b_last_trail_id": trail_id,
            "b_dnc": True,
            "b_dnc_since": now,
            "b_dnc_source": row["source"],
        }
    repo.update_contacts(session, list(moved.values()))
    repo.finish_messages(
        session,
        [
            {
                "b_id": plan.prep.msg.id,
                "b_kind": str(plan.prep.report.kind),
                "b_detector": plan.prep.report.detector,
                "b_parse_error": _cut(plan.prep.report.error),
                "b_signed": plan.prep.signed,
                "b_arrived_at": plan.prep.arrived,
                "b_processed_at": now,
                "b_raw_z": plan.prep.packed,  # the listener stored it plain: kept compressed from now on
            }
            for plan in plans
        ],
    )
    done: dict[int, Processed] = {}
    for plan, first in zip(plans, firsts, strict=True):
        events = tuple(EventOutcome(**outcome, event_id=event_ids[first + i]) for i, outcome in enumerate(plan.outcomes))
        done[plan.prep.msg.id] = Processed(str(plan.prep.report.kind), plan.prep.arrived, events)
    return done


def _soft_history(
    session: Session, preps: Sequence[_Prepared], rows: dict[str, repo.ContactRow], settings: Settings, now: datetime
) -> dict[int, list[datetime]]:
    """Counted soft arrivals of the contacts that need them: not DNC yet, with a result that counts.

    Whether a result counts depends on the result and the settings only, never on the history, so
    asking the (pure) policy with an empty history finds them exactly; everyone else skips the query.
    """
    needed: set[int] = set()
    arrivals: list[datetime] = []
    for prep in preps:
        for obs in prep.observations():
            row = rows.get(obs.recipient) if obs.recipient else None
            if row is None or row.dnc or row.id in needed:
                continue
            try:
                decision = decide(obs, History(), settings.policy, now, signed=prep.signed, verified_contact=prep.verified)
            except Exception:  # planning meets the same error again and parks the message
                continue
            if decision.counts:
                needed.add(row.id)
                arrivals.append(prep.arrived)
    if not needed:
        return {}
    # The policy judges a report dated in the future as arriving now; the span covers either.
    span = timedelta(days=settings.policy.soft_window_days)
    since = min(min(arrivals), now) - span
    return repo.counted_soft_arrivals_of(session, needed, since, max(arrivals) + span)


def _record_batch(
    session: Session,
    works: Sequence[_Work],
    settings: Settings,
    now: datetime,
    *,
    trail_source: str | None = None,
    actor: str = SYSTEM_ACTOR,
    isolate: bool = True,
) -> tuple[dict[int, Processed], dict[int, BaseException]]:
    """Record claimed messages in ``session``: what each did, and the failures (parked as failed here).

    ``isolate``: a message that raises is parked and the others go on (the processing loop); without
    it the first error propagates (reprocess, whose caller rolls the message back).
    """
    failures: dict[int, BaseException] = {}
    preps: list[_Prepared] = []
    for work in works:
        if work.error is not None:
            failures[work.msg.id] = work.error
            continue
        try:
            preps.append(_prepare(work, settings))
        except Exception as exc:
            if not isolate:
                raise
            failures[work.msg.id] = exc
    rows, created = repo.lock_contacts(session, (a for p in preps for a in p.recipients if a), now)
    history = _soft_history(session, preps, rows, settings, now)

    def fresh() -> dict[str, _ContactState]:
        return {a: _ContactState(r.id, r.dnc, r.trail_seq, list(history.get(r.id, ()))) for a, r in rows.items()}

    def plan_one(prep: _Prepared, contacts: dict[str, _ContactState]) -> _Plan:
        # A failure must leave no trace in the in-batch states either: the next message must not see it.
        touched = {a: contacts[a] for a in prep.recipients if a and a in contacts}
        saved = {a: (c.dnc, c.trail_seq, len(c.soft)) for a, c in touched.items()}
        try:
            return _plan(prep, contacts, settings, now, trail_source, actor)
        except BaseException:
            for a, (dnc, seq, n) in saved.items():
                touched[a].dnc, touched[a].trail_seq = dnc, seq
                del touched[a].soft[n:]
            raise

    done: dict[int, Processed] = {}
    if not isolate:
        contacts = fresh()
        done = _write(session, [plan_one(p, contacts) for p in preps], now)
        return done, failures

    contacts = fresh()
    plans: list[_Plan] = []
    for prep in preps:
        try:
            plans.append(plan_one(prep, contacts))
        except Exception as exc:
            failures[prep.msg.id] = exc
    try:
        with session.begin_nested():
            done = _write(session, plans, now)
    except Exception as exc:
        if _is_outage(exc):
            raise
        # One message's rows were refused (e.g. a value the database cannot store): decide again, one
        # message per savepoint, so the refused one is parked and nobody's history includes it.
        log.warning("batch.write_failed", error=_error_text(exc), messages=len(plans))
        contacts = fresh()
        done = {}
        for prep in preps:
            if prep.msg.id in failures:
                continue
            try:
                with session.begin_nested():
                    done.update(_write(session, [plan_one(prep, contacts)], now))
            except Exception as one:
                if _is_outage(one):
                    raise
                failures[prep.msg.id] = one
    if failures:
        repo.mark_failed_many(session, [(mid, _error_text(exc)) for mid, exc in failures.items()], now)
        used = {a for p in preps if p.msg.id in done for a in p.recipients if a}
        if created - used:
            repo.delete_unused_contacts(session, created - used)
    return done, failures


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
    Errors propagate: the caller owns the transaction and rolls it back.
    """
    pending = repo.PendingMessage(msg.id, msg.raw_z, msg.rcpt_tos, msg.protocol, msg.received_at, msg.arrival_override)
    raw = repo.raw_bytes(pending)
    if report is None:
        rcpts = [r for r in msg.rcpt_tos.split("\n") if r]
        report = analyze(raw, rcpts[0] if rcpts else None)
    done, _ = _record_batch(session, [_Work(pending, raw, report)], settings, now, trail_source=trail_source,
                            actor=actor, isolate=False)  # fmt: skip
    return done[msg.id]


# --- the processing loop's unit: claim a batch, record it, commit once --------------------------------


def _log_outcomes(message_id: int, done: Processed) -> None:
    for ev in done.events:
        log.info(
            "bounce.recorded",
            message_id=message_id,
            event_id=ev.event_id,
            contact=ev.recipient,
            kind=ev.kind,
            reason=ev.reason,
            hard=ev.hard,
            status=ev.status,
            rule=ev.rule,
            policy=ev.policy_rule,
            counted=ev.counted,
        )
        if ev.dnc_raised:
            log.info("dnc.raised", contact=ev.recipient, source=ev.source, rule=ev.rule, policy=ev.policy_rule,
                     message_id=message_id)  # fmt: skip


def process_batch(
    engine: Engine,
    settings: Settings,
    *,
    limit: int | None = None,
    ids: Sequence[int] | None = None,
    now: datetime | None = None,
) -> list[IngestResult]:
    """Claim up to ``limit`` stored messages (default ``[processing] batch``; only ``ids`` if given), oldest
    first, and process them in one transaction; returns what happened to each, [] when nothing was claimable.
    """
    clock = now or datetime.now(UTC)
    size = max(1, limit or settings.processing.batch)
    sqlite = engine.dialect.name == "sqlite"
    while True:
        peeked: list[_Work] = []
        if sqlite:
            # SQLite has one write lock for the whole database: parse before taking it, so that the
            # listener's commits (and its 250s) never wait for our parsing. Parsing is pure, so the
            # result is the same whenever it runs.
            with transaction(engine, readonly=True) as session:
                found = repo.peek_pending_batch(session, size, ids)
            if not found:
                return []
            peeked = [_analyze(m) for m in found]
        claimed: list[_Work] = []
        done: dict[int, Processed] = {}
        failures: dict[int, BaseException] = {}
        try:
            with transaction(engine) as session:
                if sqlite:
                    live = repo.still_pending(session, [w.msg.id for w in peeked])
                    claimed = [w for w in peeked if w.msg.id in live]
                else:
                    claimed = [_analyze(m) for m in repo.claim_pending_batch(session, size, ids)]
                if claimed:
                    done, failures = _record_batch(session, claimed, settings, clock)
        except Exception as exc:  # the worker edge: our failure must park messages, never lose them
            if not claimed or _is_outage(exc):
                raise  # database unreachable: the messages stay pending (rolled back) and are tried again later
            return _fall_back(engine, settings, claimed, exc, clock)
        if not claimed:
            if sqlite and ids is None:
                continue  # taken by another process since the peek: look again
            return []
        results: list[IngestResult] = []
        for work in claimed:
            mid = work.msg.id
            if mid in done:
                ok = done[mid]
                _log_outcomes(mid, ok)
                results.append(IngestResult(mid, False, "processed", ok.kind, None, ok.arrived_at, ok.events))
            else:
                error = _error_text(failures[mid])
                log.error("message.failed", message_id=mid, error=error, exc_info=failures[mid])
                results.append(IngestResult(mid, False, "failed", error=error))
        return results


def _fall_back(engine: Engine, settings: Settings, claimed: Sequence[_Work], exc: Exception, now: datetime) -> list[IngestResult]:
    """The batch failed as a whole (not an outage): one message per transaction, the one at fault parked."""
    if len(claimed) > 1:
        log.warning("batch.failed", error=_error_text(exc), messages=len(claimed))
        results: list[IngestResult] = []
        for work in claimed:
            results += process_batch(engine, settings, limit=1, ids=[work.msg.id], now=now)
        return results
    mid, error = claimed[0].msg.id, _error_text(exc)
    log.error("message.failed", message_id=mid, error=error, exc_info=exc)
    with transaction(engine) as session:
        repo.mark_failed(session, mid, error, now)
    return [IngestResult(mid, False, "failed", error=error)]


def process_one(
    engine: Engine, settings: Settings, *, message_id: int | None = None, now: datetime | None = None
) -> IngestResult | None:
    """Claim and process the oldest pending message (or ``message_id``); None when there is nothing to claim."""
    results = process_batch(engine, settings, limit=1, ids=None if message_id is None else [message_id], now=now)
    return results[0] if results else None


def process_pending(
    engine: Engine, settings: Settings, *, limit: int = 100, now: datetime | None = None, batch: int | None = None
) -> int:
    """Process up to ``limit`` stored messages, oldest first, ``batch`` (default ``[processing] batch``) per
    transaction; returns how many were handled (processed or parked as failed)."""
    size = batch or settings.processing.batch
    handled = 0
    while handled < limit:
        n = len(process_batch(engine, settings, limit=min(size, limit - handled), now=now))
        if n == 0:
            break
        handled += n
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
