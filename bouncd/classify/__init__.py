"""Report -> verdict per recipient. Pure: no I/O, no clock.

Decision order for one failure: a reason the format itself states (``reason_hint``), then the text
rules on the server's words, then the enhanced status code, then the action; hardness follows from
the reason alone (a dead address), never from the status class.
"""

from __future__ import annotations

from bouncd.classify.rules import TEXT_RULES, TextRule, match_text
from bouncd.classify.status import STATUS_RULES, StatusRule, reason_for_status
from bouncd.records import DEAD_ADDRESS_REASONS, Failure, Kind, Parsed, RecipientResult, Report, Verdict

__all__ = ["STATUS_RULES", "TEXT_RULES", "StatusRule", "TextRule", "classify", "classify_parsed", "is_hard"]

_NON_BOUNCE_REASON = {Kind.FEEDBACK: "feedback", Kind.VACATION: "vacation", Kind.DELIVERED: "delivered"}


def is_hard(reason: str, status: str | None, reply_code: str | None) -> bool:
    """True only when the address itself is dead (RFC 7505 null MX counts when permanent)."""
    if reason in DEAD_ADDRESS_REASONS:
        return True
    if reason == "notaccept":
        return (status or "").startswith("5") or (reply_code or "").startswith("5")
    return False


def classify(failure: Failure, kind: Kind = Kind.BOUNCE) -> Verdict:
    """Decide the reason and hardness of one failure."""
    if kind in _NON_BOUNCE_REASON:
        reason = _NON_BOUNCE_REASON[kind]
        return Verdict(reason, False, failure.hint_rule or f"kind.{reason}", failure.hint_evidence)
    if failure.reason_hint:
        reason = failure.reason_hint
        return Verdict(
            reason,
            is_hard(reason, failure.status, failure.reply_code),
            failure.hint_rule or "detector",
            failure.hint_evidence,
        )
    if failure.diagnostic:
        hit = match_text(failure.diagnostic)
        if hit:
            r, evidence = hit
            return Verdict(r.reason, is_hard(r.reason, failure.status, failure.reply_code), r.id, evidence)
    srule = reason_for_status(failure.status)
    if srule:
        return Verdict(
            srule.reason, is_hard(srule.reason, failure.status, failure.reply_code), srule.id, failure.status or ""
        )
    if failure.action == "delayed":
        return Verdict("expired", False, "action.delayed", "Action: delayed")
    if failure.status or failure.reply_code or failure.diagnostic:
        return Verdict("onhold", False, "fallback.onhold", failure.status or failure.reply_code or "")
    return Verdict("undefined", False, "fallback.undefined", "")


def classify_parsed(parsed: Parsed, envelope_recipient: str | None = None) -> Report:
    """Classify every failure of a parsed message into a :class:`Report`."""
    results = []
    for f in parsed.failures:
        v = classify(f, parsed.kind)
        results.append(
            RecipientResult(
                recipient=f.recipient,
                action=f.action,
                status=f.status,
                reply_code=f.reply_code,
                diagnostic=f.diagnostic,
                remote_mta=f.remote_mta,
                command=f.command,
                reason=v.reason,
                hard=v.hard,
                rule=v.rule,
                evidence=v.evidence,
            )
        )
    return Report(
        kind=parsed.kind,
        detector=parsed.detector,
        results=tuple(results),
        error=parsed.error,
        original_message_id=parsed.original_message_id,
        original_headers=parsed.original_headers,
        envelope_recipient=envelope_recipient,
        arrival_date=parsed.arrival_date,
        reporting_mta=parsed.reporting_mta,
        feedback_type=parsed.feedback_type,
    )
