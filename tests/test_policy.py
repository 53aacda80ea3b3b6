"""The DNC policy, pure: verdict + history + settings + now -> decision, with the id of the rule that decided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bouncd.config import PolicySettings
from bouncd.policy import History, Observation, decide, soft_threshold_reached

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DEFAULTS = PolicySettings()


def obs(reason: str = "mailboxfull", *, hard: bool = False, kind: str = "bounce", action: str | None = "failed",
        at: datetime = NOW, recipient: str | None = "ann@example.com", status: str = "5.0.0") -> Observation:
    """One recipient result."""
    return Observation(recipient, kind, action, hard, reason, f"text.{reason}", at, status, "server words")


def days_before(*n: int) -> tuple[datetime, ...]:
    """Arrival times n days before NOW."""
    return tuple(NOW - timedelta(days=d) for d in n)


def test_a_hard_bounce_raises_dnc_at_once() -> None:
    """A dead address needs no history."""
    d = decide(obs("userunknown", hard=True), History(), DEFAULTS, NOW)
    assert d.raise_dnc and d.source == "hard_bounce" and d.rule == "policy.hard_bounce"
    assert "userunknown" in d.note and "server words" in d.note


def test_a_complaint_raises_dnc_at_once() -> None:
    """An ARF complaint is the recipient saying stop."""
    d = decide(obs("feedback", kind="feedback", action=None), History(), DEFAULTS, NOW)
    assert d.raise_dnc and d.source == "complaint"


def test_four_days_of_mailbox_full_do_not_raise_and_the_fifth_day_does() -> None:
    """N soft bounces on N distinct days within the window raise DNC; N-1 do not."""
    assert not decide(obs(), History(soft_arrivals=days_before(1, 2, 3)), DEFAULTS, NOW).raise_dnc
    d = decide(obs(), History(soft_arrivals=days_before(1, 2, 3, 4)), DEFAULTS, NOW)
    assert d.raise_dnc and d.source == "soft_bounces" and d.counts and "5 soft bounces on 5 distinct days" in d.note


def test_many_soft_bounces_on_one_day_count_as_one_day() -> None:
    """A burst of retries on one day is one day: the condition must persist."""
    same_day = tuple(NOW - timedelta(hours=h) for h in range(1, 10))
    assert not decide(obs(), History(soft_arrivals=same_day), DEFAULTS, NOW).raise_dnc


def test_soft_bounces_spread_wider_than_the_window_do_not_raise() -> None:
    """Five days spread over more than 30 days are not five within 30."""
    assert not decide(obs(), History(soft_arrivals=days_before(10, 20, 30, 40)), DEFAULTS, NOW).raise_dnc


def test_archives_imported_out_of_order_reach_the_same_answer() -> None:
    """The window may lie before or after the current bounce: import order does not matter."""
    current = NOW - timedelta(days=4)
    later = days_before(3, 2, 1, 0)
    assert decide(obs(at=current), History(soft_arrivals=later), DEFAULTS, NOW).raise_dnc


@pytest.mark.parametrize(
    "reason",
    ["blocked", "spamdetected", "policyviolation", "authfailure", "badreputation", "speeding", "toomanyconn",
     "securityerror", "contenterror", "rejected", "onhold", "undefined", "systemerror", "networkerror"],
)
def test_rejections_caused_by_our_sending_never_count(reason: str) -> None:
    """Blocked IP, spam/content, policy, auth, reputation, rate limits (and unknowns) never count toward DNC."""
    d = decide(obs(reason), History(soft_arrivals=days_before(*range(1, 20))), DEFAULTS, NOW)
    assert not d.raise_dnc and not d.counts and d.rule == "policy.soft.ours"


@pytest.mark.parametrize("action", ["delayed", "relayed", "delivered", "expanded"])
def test_delayed_notices_are_recorded_never_counted(action: str) -> None:
    """RFC 3464 'delayed' is a warning, even when the reason would otherwise count."""
    d = decide(obs("expired", action=action), History(soft_arrivals=days_before(1, 2, 3, 4)), DEFAULTS, NOW)
    assert not d.raise_dnc and not d.counts and d.rule == "policy.delayed"


@pytest.mark.parametrize("kind", ["vacation", "delivered", "unknown"])
def test_auto_replies_and_success_notices_never_count(kind: str) -> None:
    """Only bounces and complaints can change DNC."""
    d = decide(obs("vacation", kind=kind, hard=False), History(), DEFAULTS, NOW)
    assert not d.raise_dnc and d.rule == "policy.not_a_failure"


def test_a_contact_already_dnc_gets_no_new_trail_entry() -> None:
    """Bounces for a DNC contact are recorded only."""
    d = decide(obs("userunknown", hard=True), History(dnc=True), DEFAULTS, NOW)
    assert not d.raise_dnc and d.rule == "policy.already_dnc"


def test_unsigned_bounces_never_change_dnc_when_signatures_are_required() -> None:
    """require_signed_return_path: a forged bounce must not DNC anyone."""
    strict = PolicySettings(require_signed_return_path=True)
    d = decide(obs("userunknown", hard=True), History(), strict, NOW, signed=False)
    assert not d.raise_dnc and not d.counts and d.rule == "policy.unsigned"
    signed = decide(obs("userunknown", hard=True), History(), strict, NOW, signed=True, verified_contact="ann@example.com")
    assert signed.raise_dnc


def test_a_signature_for_another_contact_does_not_dnc_the_named_recipient() -> None:
    """A report signed for one contact that names another (forwarded, or forged) changes nobody's DNC."""
    d = decide(obs("userunknown", hard=True), History(), DEFAULTS, NOW, signed=True, verified_contact="bob@example.com")
    assert not d.raise_dnc and d.rule == "policy.signature_mismatch"


def test_no_recipient_means_nothing_to_decide() -> None:
    """A result with no address is recorded only."""
    assert decide(obs("userunknown", hard=True, recipient=None), History(), DEFAULTS, NOW).rule == "policy.no_recipient"


def test_thresholds_come_from_settings() -> None:
    """soft_bounces and soft_window_days are configurable."""
    two_in_three = PolicySettings(soft_bounces=2, soft_window_days=3)
    assert decide(obs(), History(soft_arrivals=days_before(2)), two_in_three, NOW).raise_dnc
    assert not decide(obs(), History(soft_arrivals=days_before(3)), two_in_three, NOW).raise_dnc


def test_switches_turn_off_hard_and_complaint_dnc() -> None:
    """hard_bounce_raises_dnc / complaint_raises_dnc = false record without raising."""
    off = PolicySettings(hard_bounce_raises_dnc=False, complaint_raises_dnc=False)
    assert not decide(obs("userunknown", hard=True), History(), off, NOW).raise_dnc
    assert not decide(obs("feedback", kind="feedback"), History(), off, NOW).raise_dnc


def test_a_report_dated_in_the_future_is_judged_as_arriving_now() -> None:
    """A forged future Arrival-Date cannot open a window no real bounce reaches."""
    future = NOW + timedelta(days=400)
    d = decide(obs(at=future), History(soft_arrivals=days_before(1, 2, 3, 4)), DEFAULTS, NOW)
    assert d.raise_dnc


def test_threshold_counts_distinct_days() -> None:
    """soft_threshold_reached returns the number of distinct days, or 0 below the threshold."""
    assert soft_threshold_reached(days_before(1, 1, 2), NOW, 3, 30) == 3
    assert soft_threshold_reached(days_before(1, 1), NOW, 3, 30) == 0


def test_a_final_450_user_unknown_verdict_raises_at_once() -> None:
    """The classifier's hard verdict on a final '450 4.1.1 user unknown' is a dead address: DNC at once."""
    d = decide(obs("userunknown", hard=True, status="4.1.1"), History(), DEFAULTS, NOW)
    assert d.raise_dnc and d.source == "hard_bounce" and d.rule == "policy.hard_bounce"
