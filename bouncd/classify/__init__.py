"""Report -> verdict per recipient. Pure: no I/O, no clock.

Decision order for one failure (the first step that names a reason decides):

1. a reason the format itself states (``reason_hint`` from a detector);
2. provider rules (``providers.py``): the remote provider's own error codes and wording, then the
   reporting MTA's own classification codes (Exchange ``RESOLVER.ADR.RecipNotFound``, PowerMTA categories);
3. a status code that names its cause precisely (``X.2.2`` full, ``X.7.23`` SPF, ``X.1.8`` bad sender);
4. a refusal at the greeting or ``HELO``: the sending host is blocked (unless it names load or PTR);
5. the ordered text rules (``rules.py``) on the server's words, gated by the SMTP command;
6. the enhanced status code (``status.py``);
7. the SMTP command: a refusal of ``MAIL FROM`` is about the sender (rejected);
8. the reply code (RFC 7504 ``521``/``556``: the domain accepts no mail; ``525``: account disabled);
9. the action (``delayed`` -> expired), else onhold (something was said) or undefined.

Hardness follows from the reason (a dead address), never from the status class alone. A delay notice is
never hard; a temporary failure (4xx reply, 4.X.X status) is hard only when its final report says "user
unknown" at ``RCPT TO`` or with an X.1.1 status (``450 4.1.1 user unknown``: the class lies). Words meaning
"no such user" make a bounce hard only when they answered ``RCPT TO`` or carry an address status
(``X.1.1``, the reporting MTA's own verdict); after ``DATA`` or with nothing to place them they mean a
recipient-side filter (RFC 5321 §3.3: recipients are validated at ``RCPT``; Japanese carriers answer
"Unknown user" after DATA when the recipient's filter refuses the sender), and a refusal of
``MAIL FROM`` is never hard. When unsure, the verdict is soft: calling a soft bounce hard blocks a
real person.
"""

from __future__ import annotations

from dataclasses import dataclass

from bouncd.classify.command import infer_command, normalize_command
from bouncd.classify.providers import PROVIDER_RULES, PROVIDERS, ProviderRule, match_provider, providers_for
from bouncd.classify.rules import (
    DEAD_ADDRESS_SKIP,
    GREETING,
    MAIL,
    RCPT,
    TEXT_RULES,
    TextRule,
    match_code,
    match_text,
    normalize,
)
from bouncd.classify.status import STATUS_RULES, StatusRule, is_decisive, reason_for_status
from bouncd.records import DEAD_ADDRESS_REASONS, Failure, Kind, Parsed, RecipientResult, Report, Verdict

__all__ = [
    "PROVIDERS",
    "PROVIDER_RULES",
    "STATUS_RULES",
    "TEXT_RULES",
    "ProviderRule",
    "StatusRule",
    "TextRule",
    "classify",
    "classify_parsed",
    "is_hard",
]

_NON_BOUNCE_REASON = {Kind.FEEDBACK: "feedback", Kind.VACATION: "vacation", Kind.DELIVERED: "delivered"}

# Statuses that place "no such user" words at the address itself (RFC 3463 X.1.1 / X.1.3).
_ADDRESS_STATUSES = ("5.1.1", "5.1.3", "4.1.1")
# Reasons a refusal at the greeting/HELO may still carry: the host is fine, the load is not.
_GREETING_KEEPS = frozenset({"toomanyconn", "speeding", "systemerror", "systemfull", "requireptr"})
_MAX_DIAGNOSTIC = 8192
# Mailbox states a local delivery program may report in its own words (never a dead address).
_MAILBOX_STATES = frozenset({"mailboxfull", "mesgtoobig", "exceedlimit", "suspend", "systemfull"})
# Rules whose "no such user" words still need placing (see _place_address_words).
_PLACED_RULES = frozenset({"text.userunknown"})
# RFC 7504: 521 (host) and 556 (domain) do not accept mail at all.
_NOTACCEPT_REPLIES = frozenset({"521", "556"})


def is_hard(reason: str, status: str | None, reply_code: str | None) -> bool:
    """True only when the address itself is dead (RFC 7505 null MX counts when permanent)."""
    if reason in DEAD_ADDRESS_REASONS:
        return True
    if reason == "notaccept":
        return (status or "").startswith("5") or (reply_code or "").startswith("5")
    return False


@dataclass(frozen=True, slots=True)
class _Context:
    text: str
    status: str | None
    reply: str | None
    command: str | None


def _verdict(reason: str, f: Failure, rule_id: str, evidence: str) -> Verdict:
    hard = is_hard(reason, f.status, f.reply_code)
    if reason == "notaccept" and not f.status and not f.reply_code and f.action in (None, "failed"):
        # A final failure that says the domain takes no mail (RFC 7505 null MX wording) but carries no
        # code: the report itself is the permanent verdict.
        hard = True
    if hard and f.action == "delayed":
        # A delay notice is not a failure yet (RFC 3464 §2.3.3): the MTA is still retrying.
        hard = False
    elif hard and _is_temporary(f) and not (reason == "userunknown" and rule_id.endswith((".rcpt", ".address-status"))):
        # A 4xx reply or 4.X.X status is the server's own "try again" (RFC 5321 §4.2.1, RFC 3463 §3.1).
        # The one exception is a *final* report of "user unknown" answered to RCPT TO or with an X.1.1
        # status (e.g. Postfix returning mail after ``450 4.1.1 ... User unknown`` for its whole queue
        # lifetime, or ``unknown_local_recipient_reject_code = 450``): the class lies, the address is dead.
        hard = False
    return Verdict(reason, hard, rule_id, evidence)


def _is_temporary(f: Failure) -> bool:
    return (f.status or "").startswith("4") or (f.reply_code or "").startswith("4")


def _place_address_words(ctx: _Context) -> tuple[str, str]:
    """Where "no such user" words point: the address (userunknown) or a filter (filtered), and why."""
    if ctx.command == RCPT:
        return "userunknown", "rcpt"
    if ctx.status and ctx.status.startswith(_ADDRESS_STATUSES):
        # The reporting MTA's own verdict (RFC 3463 X.1.1 "bad destination mailbox address").
        return "userunknown", "address-status"
    if ctx.command is not None:  # DATA; MAIL/greeting never reach here (rules skip them)
        return "filtered", "after-data"
    # No command and no address status: the words may be a filter's; do not call it dead.
    return "filtered", "unplaced"


def classify(failure: Failure, kind: Kind = Kind.BOUNCE) -> Verdict:
    """Decide the reason and hardness of one failure."""
    if kind in _NON_BOUNCE_REASON:
        reason = _NON_BOUNCE_REASON[kind]
        return Verdict(reason, False, failure.hint_rule or f"kind.{reason}", failure.hint_evidence)
    # An SMTP reply line is at most 512 octets (RFC 5321 §4.5.3.1.5); a diagnostic longer than a few of
    # them is quoted mail, not the server's words, and must not cost a regex scan per rule.
    text = normalize(failure.diagnostic[:_MAX_DIAGNOSTIC]) if failure.diagnostic else ""
    if failure.reason_hint:
        if failure.reason_hint == "mailererror" and text:
            # The format says a local delivery program reported (RFC 3464 "X-Unix"), not why: when the
            # program's own words name the mailbox state ("Disk quota exceeded"), the words decide.
            hit = match_text(text, None)
            if hit and hit[0].reason in _MAILBOX_STATES:
                return _verdict(hit[0].reason, failure, hit[0].id, hit[1])
        if failure.reason_hint in DEAD_ADDRESS_REASONS and normalize_command(failure.command) in DEAD_ADDRESS_SKIP:
            # Whatever the format says, a refusal of MAIL FROM or the greeting is not about the recipient.
            return _verdict("rejected", failure, f"{failure.hint_rule or 'detector'}.at-mail", failure.hint_evidence)
        return _verdict(failure.reason_hint, failure, failure.hint_rule or "detector", failure.hint_evidence)

    command = normalize_command(failure.command) or (infer_command(text) if text else None)
    if command == MAIL and failure.recipient and failure.recipient.lower() in text:
        # A reply naming the recipient is not about MAIL FROM (RCPT had not been sent yet): the
        # report attributed it to the wrong command (Sendmail V5 transcripts do), so do not trust it.
        command = None
    ctx = _Context(text, failure.status, failure.reply_code, command)

    if text:
        names = providers_for(failure.remote_mta, failure.recipient, text)
        phit = match_provider(names, text, failure.status, command)
        if phit:
            prule, evidence = phit
            reason = prule.reason
            if reason in DEAD_ADDRESS_REASONS and command in DEAD_ADDRESS_SKIP:
                reason = "rejected"
            return _verdict(reason, failure, prule.id, evidence)

    code = match_code(text, command) if text else None
    if code:
        return _verdict(code[0].reason, failure, code[0].id, code[1])

    if is_decisive(failure.status):
        srule = reason_for_status(failure.status)
        if srule:
            return _verdict(srule.reason, failure, srule.id, failure.status or "")

    hit = match_text(text, command) if text else None
    if command in GREETING and not (hit and hit[0].reason in _GREETING_KEEPS):
        return _verdict("blocked", failure, f"command.{command.lower()}-refused", hit[1] if hit else command)
    if hit:
        trule, evidence = hit
        if trule.id in _PLACED_RULES:
            if "unavailable" in evidence and _is_temporary(failure):
                # RFC 5321 §4.2.2: 450 "mailbox unavailable (e.g., mailbox busy or temporarily blocked)".
                return _verdict("onhold", failure, f"{trule.id}.temporary-unavailable", evidence)
            reason, why = _place_address_words(ctx)
            return _verdict(reason, failure, f"{trule.id}.{why}", evidence)
        if trule.id == "text.mailererror-exit":
            # A bare exit status says a program failed, not why; a status naming the cause wins
            # (sendmail: "X-Unix; 77" with 5.3.0 is the system's error).
            srule = reason_for_status(failure.status)
            if srule:
                return _verdict(srule.reason, failure, srule.id, failure.status or "")
        if trule.reason == "hostunknown" and _is_temporary(failure):
            # A 4xx "domain not found" is a lookup that may succeed later (RFC 3463 X.4.4 vs X.1.2).
            return _verdict("networkerror", failure, f"{trule.id}.temporary", evidence)
        return _verdict(trule.reason, failure, trule.id, evidence)

    if command == MAIL:
        return _verdict("rejected", failure, "command.mail-refused", failure.reply_code or failure.status or "MAIL")

    srule = reason_for_status(failure.status)
    if srule:
        return _verdict(srule.reason, failure, srule.id, failure.status or "")
    reply = failure.reply_code or ""
    if reply in _NOTACCEPT_REPLIES:
        return _verdict("notaccept", failure, f"reply.{reply}-no-mail", reply)
    if reply == "525":  # RFC 4954 §6: user account disabled
        return _verdict("suspend", failure, "reply.525-disabled", reply)
    if failure.action == "delayed":
        return _verdict("expired", failure, "action.delayed", failure.action or failure.status or "")
    if reply[:2] == "50" and reply in {"500", "501", "502", "503", "504"}:
        return _verdict("syntaxerror", failure, f"reply.{reply}-syntax", reply)
    if failure.status or failure.reply_code or text:
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
