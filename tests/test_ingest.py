"""The unit of work on both backends: store -> analyze -> events -> policy -> DNC trail, one transaction per message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from bouncd import ingest
from bouncd.config import PolicySettings, Settings, VerpSettings
from bouncd.db import repo
from bouncd.db.session import transaction
from bouncd.ingest import ingest_message, process_pending, reprocess
from bouncd.records import Inbound, Report
from tests.conftest import HARD, MAILBOX_FULL, SPAM_BLOCK, dsn_for, make_dsn

DAY0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def inbound(raw: bytes, *, protocol: str = "cli", rcpt: str = "bounces@example.org", at: datetime = NOW) -> Inbound:
    """A message as handed over by the pipe or the CLI."""
    return Inbound(raw=raw, received_at=at, mail_from="", rcpt_tos=(rcpt,), peer=None, protocol=protocol)


def full_on(day: int) -> Inbound:
    """A mailbox-full bounce for full@example.com arriving ``day`` days after DAY0."""
    return inbound(dsn_for(MAILBOX_FULL, "full@example.com", DAY0 + timedelta(days=day)))


def trail(engine: Engine, address: str) -> list[tuple[str, str, str | None]]:
    """(action, source, status of the causing event) for each trail entry, oldest first."""
    with transaction(engine) as s:
        contact = repo.find_contact(s, address)
        assert contact is not None
        return [(t.action, t.source, e.status if e else None) for t, e in repo.contact_trail(s, contact.id)]


def store(engine: Engine, *messages: Inbound) -> list[int]:
    """Store messages without processing them (as the SMTP listener does)."""
    with transaction(engine) as s:
        return [r.message_id for r in repo.store_inbound(s, list(messages))]


def test_a_hard_bounce_records_an_event_and_raises_dnc_with_evidence(engine: Engine, settings: Settings) -> None:
    """One hard bounce: one event, DNC on, the trail pointing at the event with status and diagnostic."""
    with capture_logs() as logs:
        result = ingest_message(engine, settings, inbound(dsn_for(HARD, "Dead@Example.COM", DAY0)), now=NOW)
    assert result.state == "processed" and result.kind == "bounce" and result.dnc_raised == ("dead@example.com",)
    assert result.arrived_at == DAY0  # archived mail: the report's Arrival-Date, not the receipt time
    assert trail(engine, "dead@example.com") == [("on", "hard_bounce", "5.1.1")]
    assert any(e["event"] == "dnc.raised" and e["contact"] == "dead@example.com" for e in logs)
    with transaction(engine) as s:
        (event,) = repo.list_bounces(s)
    assert event.hard and event.reason == "userunknown" and "User unknown" in event.diagnostic
    assert event.original_message_id == "<newsletter-1@example.org>" and event.policy_rule == "policy.hard_bounce"


def test_the_same_bytes_twice_record_once(engine: Engine, settings: Settings) -> None:
    """Re-delivery of identical bytes is a duplicate: no second event, no second trail entry."""
    raw = dsn_for(HARD, "dead@example.com", DAY0)
    ingest_message(engine, settings, inbound(raw), now=NOW)
    again = ingest_message(engine, settings, inbound(raw, at=NOW + timedelta(hours=1)), now=NOW + timedelta(hours=1))
    assert again.duplicate and again.state == "processed"
    with transaction(engine) as s:
        assert len(repo.list_bounces(s)) == 1
    assert len(trail(engine, "dead@example.com")) == 1


def test_live_mail_counts_from_receipt_time_and_operators_can_override(engine: Engine, settings: Settings) -> None:
    """SMTP/LMTP use the receipt time; --received-at overrides the report's dates for archives."""
    live = ingest_message(engine, settings, inbound(dsn_for(MAILBOX_FULL, "a@example.com", DAY0), protocol="smtp"), now=NOW)
    assert live.arrived_at == NOW
    override = DAY0 + timedelta(days=3)
    archived = ingest_message(
        engine, settings, inbound(dsn_for(MAILBOX_FULL, "b@example.com", DAY0)), now=NOW, arrival_override=override
    )
    assert archived.arrived_at == override


def test_mailbox_full_on_five_days_raises_dnc_on_the_fifth(engine: Engine, settings: Settings) -> None:
    """Four days stay contactable; the fifth distinct day within 30 raises DNC (source soft_bounces)."""
    for day in range(4):
        r = ingest_message(engine, settings, full_on(day), now=NOW)
        assert r.dnc_raised == ()
    fifth = ingest_message(engine, settings, full_on(4), now=NOW)
    assert fifth.dnc_raised == ("full@example.com",)
    assert trail(engine, "full@example.com") == [("on", "soft_bounces", "4.2.2")]


def test_spam_blocks_on_many_days_never_raise_dnc(engine: Engine, settings: Settings) -> None:
    """Rejections of our sending are recorded and never counted."""
    for day in range(10):
        r = ingest_message(engine, settings, inbound(dsn_for(SPAM_BLOCK, "ok@example.com", DAY0 + timedelta(days=day))), now=NOW)
        assert r.events[0].policy_rule == "policy.soft.ours" and not r.events[0].counted
    assert trail(engine, "ok@example.com") == []


def test_delayed_notices_are_recorded_never_counted(engine: Engine, settings: Settings) -> None:
    """Action: delayed on ten days changes nothing."""
    for day in range(10):
        raw = make_dsn("slow@example.com", "4.4.7", "Delivery delayed", DAY0 + timedelta(days=day), action="delayed")
        assert ingest_message(engine, settings, inbound(raw), now=NOW).events[0].policy_rule == "policy.delayed"
    assert trail(engine, "slow@example.com") == []


def test_after_dnc_is_cleared_old_soft_bounces_no_longer_count(engine: Engine, settings: Settings) -> None:
    """Clearing DNC starts the count afresh: one more soft bounce does not re-raise it."""
    from bouncd.client import apply_dnc

    for day in range(5):
        ingest_message(engine, settings, full_on(day), now=NOW)
    with transaction(engine) as s:
        apply_dnc(s, "full@example.com", on=False, source="manual", actor="t", note="emptied", now=NOW + timedelta(hours=1))
    later = NOW + timedelta(days=1)
    r = ingest_message(engine, settings, full_on(5), now=later)
    assert r.dnc_raised == ()
    assert [a for a, _, _ in trail(engine, "full@example.com")] == ["on", "off"]


def test_bounces_for_a_dnc_contact_add_no_trail_entries(engine: Engine, settings: Settings) -> None:
    """A second hard bounce for a DNC contact is recorded only."""
    ingest_message(engine, settings, inbound(dsn_for(HARD, "dead@example.com", DAY0)), now=NOW)
    r = ingest_message(engine, settings, inbound(dsn_for(HARD, "dead@example.com", DAY0 + timedelta(days=1))), now=NOW)
    assert r.events[0].policy_rule == "policy.already_dnc"
    assert len(trail(engine, "dead@example.com")) == 1


def test_process_pending_takes_the_oldest_first_and_marks_them_processed(engine: Engine, settings: Settings) -> None:
    """Stored messages are processed in arrival order, up to the limit asked for."""
    ids = store(engine, *(inbound(dsn_for(HARD, f"u{i}@example.com", DAY0)) for i in range(3)))
    assert process_pending(engine, settings, limit=2, now=NOW) == 2
    with transaction(engine) as s:
        states = [repo.get_message(s, i).state for i in ids]
    assert states == ["processed", "processed", "pending"]
    assert process_pending(engine, settings, now=NOW) == 1
    assert process_pending(engine, settings, now=NOW) == 0


def test_a_processing_failure_parks_the_message_with_its_error(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our bug after a message's rows were written: that message is rolled back to its savepoint and parked
    failed with the error (not retried, nothing half-written); the rest of its batch commits."""
    ids = store(
        engine,
        inbound(dsn_for(HARD, "first@example.com", DAY0)),
        inbound(dsn_for(HARD, "dead@example.com", DAY0)),
        inbound(dsn_for(HARD, "last@example.com", DAY0)),
    )
    bad = ids[1]
    real = repo.finish_messages

    def explode_after_writing(session: Any, rows: Any) -> None:
        real(session, rows)  # events, trail and contact written ... then the unit of work fails
        if any(r["b_id"] == bad for r in rows):
            raise RuntimeError("classifier exploded")

    monkeypatch.setattr(repo, "finish_messages", explode_after_writing)
    with capture_logs() as logs:
        assert process_pending(engine, settings, now=NOW) == 3
    assert process_pending(engine, settings, now=NOW) == 0  # never retried in a loop
    assert [e["message_id"] for e in logs if e["event"] == "message.failed"] == [bad]
    with transaction(engine) as s:
        msg = repo.get_message(s, bad)
        assert msg.state == "failed" and msg.error == "RuntimeError: classifier exploded"
        assert repo.raw_bytes(msg).startswith(b"From: MAILER-DAEMON")
        assert [e.recipient for e in repo.list_bounces(s)] == ["last@example.com", "first@example.com"]
        assert repo.find_contact(s, "dead@example.com") is None
        assert [repo.get_message(s, i).state for i in ids] == ["processed", "failed", "processed"]
    assert trail(engine, "first@example.com") == trail(engine, "last@example.com") == [("on", "hard_bounce", "5.1.1")]
    monkeypatch.setattr(repo, "finish_messages", real)
    changes = reprocess(engine, settings, now=NOW)  # once fixed, a reprocess picks it up
    assert ("state", "failed", "processed") in [(c.what, c.before, c.after) for c in changes]
    assert trail(engine, "dead@example.com")[0][:2] == ("on", "reprocess")


def test_one_batch_decides_each_message_with_the_history_of_the_earlier_ones(engine: Engine, settings: Settings) -> None:
    """Five mailbox-full days and two hard bounces for one contact each, stored together and processed as one
    batch: the fifth day raises DNC once, the second hard bounce finds the contact already DNC."""
    store(engine, *(full_on(day) for day in range(5)))
    store(engine, *(inbound(dsn_for(HARD, "dead@example.com", DAY0 + timedelta(days=d))) for d in range(2)))
    with capture_logs() as logs:
        assert process_pending(engine, settings, now=NOW) == 7
    assert trail(engine, "full@example.com") == [("on", "soft_bounces", "4.2.2")]
    assert trail(engine, "dead@example.com") == [("on", "hard_bounce", "5.1.1")]
    with transaction(engine) as s:
        rules = [(e.recipient, e.policy_rule) for e in reversed(repo.list_bounces(s)) if e.recipient == "dead@example.com"]
        contact = repo.find_contact(s, "dead@example.com")
        assert contact is not None and contact.dnc and contact.trail_seq == 1 and contact.dnc_source == "hard_bounce"
    assert [r for _, r in rules] == ["policy.hard_bounce", "policy.already_dnc"]
    raised = [e["contact"] for e in logs if e["event"] == "dnc.raised"]
    assert sorted(raised) == ["dead@example.com", "full@example.com"]
    assert len([e for e in logs if e["event"] == "bounce.recorded"]) == 7


def test_a_message_that_fails_in_a_batch_does_not_count_for_the_next_ones(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy raises for one of five mailbox-full days: that message is parked, the four others are
    recorded, and four days are not enough for DNC."""
    real = ingest.decide
    broken_day = (DAY0 + timedelta(days=2)).date()

    def decide_badly(obs: Any, *args: Any, **kw: Any) -> Any:
        if obs.arrived_at.date() == broken_day:
            raise KeyError("policy bug")
        return real(obs, *args, **kw)

    monkeypatch.setattr(ingest, "decide", decide_badly)
    ids = store(engine, *(full_on(day) for day in range(5)))
    assert process_pending(engine, settings, now=NOW) == 5
    with transaction(engine) as s:
        states = [repo.get_message(s, i).state for i in ids]
        assert len(repo.list_bounces(s)) == 4 and repo.get_message(s, ids[2]).error == "KeyError: 'policy bug'"
    assert states == ["processed", "processed", "failed", "processed", "processed"]
    assert trail(engine, "full@example.com") == []


def test_each_recorded_bounce_is_logged_once(engine: Engine, settings: Settings) -> None:
    """One bounce.recorded event per recorded recipient result, with its verdict; dnc.raised for the raise."""
    with capture_logs() as logs:
        result = ingest_message(engine, settings, inbound(dsn_for(HARD, "dead@example.com", DAY0)), now=NOW)
    (recorded,) = [e for e in logs if e["event"] == "bounce.recorded"]
    assert recorded["message_id"] == result.message_id and recorded["event_id"] == result.events[0].event_id
    assert recorded["contact"] == "dead@example.com" and recorded["hard"] is True and recorded["reason"] == "userunknown"
    assert recorded["policy"] == "policy.hard_bounce"
    (raised,) = [e for e in logs if e["event"] == "dnc.raised"]
    assert raised["source"] == "hard_bounce" and raised["message_id"] == result.message_id


def test_signed_return_paths_are_required_when_configured(engine: Engine) -> None:
    """require_signed_return_path: an unsigned bounce is stored and shown but changes no DNC; a signed one does."""
    from bouncd import verp

    strict = Settings(
        policy=PolicySettings(require_signed_return_path=True),
        verp=VerpSettings(secret="s3cret", domain="bounce.example.org"),
    )
    unsigned = ingest_message(engine, strict, inbound(dsn_for(HARD, "dead@example.com", DAY0)), now=NOW)
    assert unsigned.dnc_raised == () and unsigned.events[0].policy_rule == "policy.unsigned"
    rcpt = verp.encode(strict.verp, "dead@example.com")
    raw = dsn_for(HARD, "dead@example.com", DAY0 + timedelta(days=1))
    signed = ingest_message(engine, strict, inbound(raw, rcpt=rcpt), now=NOW)
    assert signed.dnc_raised == ("dead@example.com",)
    forged_rcpt = verp.encode(strict.verp, "someone.else@example.com")
    forged = ingest_message(engine, strict, inbound(dsn_for(HARD, "victim@example.com", DAY0), rcpt=forged_rcpt), now=NOW)
    assert forged.dnc_raised == () and forged.events[0].policy_rule == "policy.signature_mismatch"


def _flip_to_soft(report: Report) -> Report:
    import dataclasses

    return dataclasses.replace(
        report,
        results=tuple(dataclasses.replace(r, hard=False, reason="mailboxfull", rule="text.new-rule") for r in report.results),
    )


def test_reprocess_dry_run_shows_changes_and_writes_nothing(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule change that makes a hard bounce soft: dry-run lists the verdict and DNC change, apply writes them."""
    ingest_message(engine, settings, inbound(dsn_for(HARD, "dead@example.com", DAY0)), now=NOW)
    assert reprocess(engine, settings, now=NOW) == []  # same rules: nothing to change, nothing written
    real = ingest.analyze
    monkeypatch.setattr(ingest, "analyze", lambda raw, rcpt=None: _flip_to_soft(real(raw, rcpt)))
    preview = reprocess(engine, settings, dry_run=True, now=NOW)
    assert {(c.what, c.before[:4], c.after[:4]) for c in preview} == {("verdict", "hard", "soft"), ("dnc", "on", "off")}
    assert trail(engine, "dead@example.com") == [("on", "hard_bounce", "5.1.1")]
    applied = reprocess(engine, settings, now=NOW)
    assert applied == preview
    assert [(a, s) for a, s, _ in trail(engine, "dead@example.com")] == [("on", "hard_bounce"), ("off", "reprocess")]
    with transaction(engine) as s:
        (event,) = repo.list_bounces(s)
        assert event.rule == "text.new-rule" and not event.hard
        assert s.execute(text("SELECT count(*) FROM bounce_events WHERE superseded")).scalar_one() == 1


def test_over_long_values_from_a_broken_report_do_not_fail_the_message(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Garbage read from untrusted text is cut to fit; an impossible address counts as no recipient."""
    import dataclasses

    real = ingest.analyze

    def garbage(raw: bytes, rcpt: str | None = None) -> Report:
        report = real(raw, rcpt)
        (r,) = report.results
        long_addr = "x" * 400 + "@example.com"
        results = (dataclasses.replace(r, status="5." * 40, command="RCPT" * 10),
                   dataclasses.replace(r, recipient=long_addr, reply_code="550" * 9))
        return dataclasses.replace(report, results=results)

    monkeypatch.setattr(ingest, "analyze", garbage)
    result = ingest_message(engine, settings, inbound(dsn_for(HARD, "dead@example.com", DAY0)), now=NOW)
    assert result.state == "processed"
    assert [e.recipient for e in result.events] == ["dead@example.com", None]
    with transaction(engine) as s:
        assert sorted(len(e.status or "") for e in repo.list_bounces(s)) == [5, 16]


def test_a_parser_crash_parks_the_message_too(engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether parsing runs before the write lock (SQLite) or inside the transaction, a crash parks the message."""

    def crash(raw: bytes, rcpt: str | None = None) -> Report:
        raise ValueError("parser bug")

    monkeypatch.setattr(ingest, "analyze", crash)
    (mid,) = store(engine, inbound(dsn_for(HARD, "dead@example.com", DAY0)))
    assert process_pending(engine, settings, now=NOW) == 1
    with transaction(engine) as s:
        msg = repo.get_message(s, mid)
        assert msg.state == "failed" and msg.error == "ValueError: parser bug"


def test_a_nul_character_in_a_diagnostic_is_stored_on_both_backends(engine: Engine, settings: Settings) -> None:
    """Binary junk copied into a DSN (U+0000, which PostgreSQL text refuses) is recorded as U+FFFD, not a failure."""
    raw = make_dsn("dead@example.com", "5.1.1", "550 user unknown \x00\x00 here", DAY0)
    result = ingest_message(engine, settings, inbound(raw), now=NOW)
    assert result.state == "processed" and result.dnc_raised == ("dead@example.com",)
    with transaction(engine) as s:
        (event,) = repo.list_bounces(s)
    assert "user unknown \ufffd\ufffd here" in event.diagnostic


def test_a_row_the_database_refuses_parks_only_its_message(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL refuses an over-long value for one message of a batch: the batch is retried one message per
    savepoint, that message is parked failed, the others are recorded with their DNC changes."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce column lengths")
    real = ingest.analyze

    def overlong_status(raw: bytes, rcpt: str | None = None) -> Report:
        import dataclasses

        report = real(raw, rcpt)
        if b"bad@example.com" not in raw:
            return report
        return dataclasses.replace(report, detector="d" * 100)  # messages.detector is VARCHAR(64)

    monkeypatch.setattr(ingest, "analyze", overlong_status)
    ids = store(engine, *(inbound(dsn_for(HARD, f"{who}@example.com", DAY0)) for who in ("a", "bad", "c")))
    with capture_logs() as logs:
        assert process_pending(engine, settings, now=NOW) == 3
    assert any(e["event"] == "batch.write_failed" for e in logs)
    with transaction(engine) as s:
        states = [repo.get_message(s, i).state for i in ids]
        error = repo.get_message(s, ids[1]).error or ""
        assert repo.find_contact(s, "bad@example.com") is None
    assert states == ["processed", "failed", "processed"] and "DataError" in error
    assert trail(engine, "a@example.com") == trail(engine, "c@example.com") == [("on", "hard_bounce", "5.1.1")]
