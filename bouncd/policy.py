"""Verdict + contact history + settings + now -> decision: does this result raise Do Not Contact, and why.

Pure: no I/O, no clock. The rules, in the order they are applied (each decision carries the id):

- ``policy.no_recipient``: nobody to attribute the result to; recorded only.
- ``policy.not_a_failure``: delivered notices, auto-replies and unrecognised mail never count.
- ``policy.delayed``: ``Action: delayed`` (RFC 3464 §2.3.3) is a warning; the MTA is still trying.
- ``policy.complaint``: an ARF complaint (RFC 5965) raises DNC at once.
- ``policy.hard_bounce``: the address itself is dead (the classifier's ``hard``) raises DNC at once.
- ``policy.soft_bounces``: a soft bounce whose reason is the *recipient's* condition (mailbox full,
  suspended, expired ...) counts; N of them on at least N distinct days (UTC) within a window of
  ``soft_window_days`` consecutive days raises DNC. Rejections caused by our own sending (blocked IP,
  spam/content, policy, authentication, reputation, rate limits) never count: ``policy.soft.ours``.
- Gates that stop a raise: ``policy.already_dnc`` (recorded, no new trail entry), ``policy.unsigned``
  (``require_signed_return_path`` and the envelope recipient carried no valid signature), and
  ``policy.signature_mismatch`` (signed for another contact: a forwarded or forged report).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bouncd.config import PolicySettings

SOURCE_HARD = "hard_bounce"
SOURCE_SOFT = "soft_bounces"
SOURCE_COMPLAINT = "complaint"

# The reasons that describe the recipient's own mailbox; everything else says nothing about whether the
# person can be reached, or blames our sending. Used when the settings do not name their own list.
DEFAULT_COUNTING_REASONS = ("mailboxfull", "suspend", "expired")

# RFC 3464 §2.3.3 actions that are not a final failure.
_NOT_FINAL_ACTIONS = frozenset({"delayed", "delivered", "relayed", "expanded"})


@dataclass(frozen=True, slots=True)
class Observation:
    """One recipient result as the policy sees it."""

    recipient: str | None  # normalised address
    kind: str  # bouncd.records.Kind value
    action: str | None
    hard: bool
    reason: str
    rule: str
    arrived_at: datetime
    status: str | None = None
    diagnostic: str = ""
    reply_code: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """What the store knows about the contact before this result."""

    dnc: bool = False
    soft_arrivals: tuple[datetime, ...] = ()  # earlier counted soft bounces since DNC was last cleared


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one result."""

    counts: bool  # counts toward the soft-bounce threshold from now on
    raise_dnc: bool
    source: str | None  # trail source when raise_dnc
    rule: str  # policy rule id
    note: str  # the reason in words, for the trail and the CLI


def counting_reasons(settings: PolicySettings) -> frozenset[str]:
    """Reasons that count toward the soft-bounce threshold under ``settings``."""
    configured: Iterable[str] = settings.counting_reasons or DEFAULT_COUNTING_REASONS
    return frozenset(configured)


def soft_threshold_reached(arrivals: Iterable[datetime], current: datetime, needed: int, window_days: int) -> int:
    """Distinct arrival days in the best window of ``window_days`` days that holds ``current``; 0 if below ``needed``.

    Any window containing the current bounce qualifies, so archives imported out of order reach the
    same answer as live mail.
    """
    today = current.date()
    span = timedelta(days=window_days - 1)
    days: set[date] = {today}
    days.update(a.date() for a in arrivals if abs(a.date() - today) <= span)
    ordered = sorted(days)
    best = 0
    for start in ordered:
        if start > today or today - start > span:
            continue
        best = max(best, sum(1 for d in ordered if start <= d <= start + span))
    return best if best >= needed else 0


def _describe(obs: Observation) -> str:
    parts = [obs.reason]
    if obs.status:
        parts.append(obs.status)
    text = ", ".join(parts)
    if obs.diagnostic:
        text += f": {obs.diagnostic[:300]}"
    return text


def _wanted(obs: Observation, history: History, settings: PolicySettings) -> Decision:
    """The decision before the gates (already DNC, signatures)."""
    if obs.kind == "feedback":
        if not settings.complaint_raises_dnc:
            return Decision(False, False, None, "policy.complaint_disabled", "complaint recorded; complaints do not raise DNC")
        return Decision(False, True, SOURCE_COMPLAINT, "policy.complaint", "complaint (ARF feedback report)")
    # The classifier calls a temporary code hard only for a *final* report of "user unknown" at RCPT
    # TO or with an X.1.1 status (a 450 4.1.1 refused for the sender's whole queue lifetime): the
    # status class lies there and the verdict is the dead address, so it raises like any hard bounce.
    if obs.hard:
        if not settings.hard_bounce_raises_dnc:
            return Decision(False, False, None, "policy.hard_disabled", f"hard bounce recorded: {_describe(obs)}")
        return Decision(False, True, SOURCE_HARD, "policy.hard_bounce", f"hard bounce: {_describe(obs)}")
    if obs.reason not in counting_reasons(settings):
        return Decision(False, False, None, "policy.soft.ours", f"soft bounce that does not count ({obs.reason})")
    return _soft(obs, history, settings, "policy.soft.below_threshold")


def _soft(obs: Observation, history: History, settings: PolicySettings, below_rule: str) -> Decision:
    """A counted soft bounce: DNC once the contact's soft bounces fill enough distinct days in the window."""
    days = soft_threshold_reached(history.soft_arrivals, obs.arrived_at, settings.soft_bounces, settings.soft_window_days)
    if days:
        note = f"{days} soft bounces on {days} distinct days within {settings.soft_window_days} days; last: {_describe(obs)}"
        return Decision(True, True, SOURCE_SOFT, "policy.soft_bounces", note)
    return Decision(True, False, None, below_rule, f"soft bounce counted ({obs.reason})")


def decide(
    obs: Observation,
    history: History,
    settings: PolicySettings,
    now: datetime,
    *,
    signed: bool = False,
    verified_contact: str | None = None,
) -> Decision:
    """Decide what one recipient result does to its contact's DNC state."""
    if obs.recipient is None:
        return Decision(False, False, None, "policy.no_recipient", "no recipient address found")
    if obs.kind not in ("bounce", "feedback"):
        return Decision(False, False, None, "policy.not_a_failure", f"{obs.kind} recorded only")
    if obs.kind == "bounce" and (obs.action or "").lower() in _NOT_FINAL_ACTIONS:
        return Decision(False, False, None, "policy.delayed", f"{obs.action} notice recorded only")
    if obs.arrived_at > now:
        # A report dated in the future (clock skew, or forged) is judged as arriving now.
        obs = dataclasses.replace(obs, arrived_at=now)
    wanted = _wanted(obs, history, settings)
    if settings.require_signed_return_path and not signed:
        return Decision(False, False, None, "policy.unsigned", "unsigned return path: recorded, DNC unchanged")
    if signed and verified_contact is not None and verified_contact != obs.recipient:
        note = f"return path signed for {verified_contact}, not {obs.recipient}: recorded, DNC unchanged"
        return Decision(False, False, None, "policy.signature_mismatch", note)
    if wanted.raise_dnc and history.dnc:
        return Decision(wanted.counts, False, None, "policy.already_dnc", "already DNC: recorded only")
    return wanted
