"""RFC 3464 delivery status notifications (multipart/report; report-type=delivery-status)."""

from __future__ import annotations

import dataclasses
import re

from bouncd.parse.base import Detector, Mail, is_generic_status, original_message_id, unfold
from bouncd.parse.fields import block_date, block_failure, is_recipient_block, parse_blocks, strip_type
from bouncd.records import Failure, Kind, Parsed

_FAIL_ACTIONS = {"failed", "delayed"}
_REPORT_UNAVAILABLE = "Delivery report unavailable"
_OK_ACTIONS = {"delivered", "relayed", "expanded"}
_IN_REPLY = re.compile(r"\(in reply to (?:end of )?(RCPT TO|MAIL FROM|DATA|HELO|EHLO)\b[^)]*\)", re.I)


def explain_from_text(text: str, failure: Failure) -> Failure:
    """Fill a missing diagnostic from the human-readable part (Postfix: ``host X said: ...``)."""
    if failure.diagnostic or not failure.recipient:
        return failure
    idx = text.lower().find(failure.recipient)
    if idx < 0:
        return failure
    para = text[idx:].split("\n\n", 1)[0]
    said = para.find(" said:")
    if said < 0:
        return failure
    diagnostic = unfold(_IN_REPLY.sub("", para[said + 6 :]))
    command = None
    m = _IN_REPLY.search(para)
    if m:
        command = m.group(1).upper().split()[0]
    return dataclasses.replace(failure, diagnostic=diagnostic, command=failure.command or command)


def failures_from_status_text(status_text: str, body_text: str = "") -> tuple[list[Failure], dict[str, str]]:
    """Failures from RFC 3464 fields, plus the per-message block."""
    blocks = parse_blocks(status_text)
    per_message: dict[str, str] = {}
    if blocks and not is_recipient_block(blocks[0]):
        per_message = blocks[0]
        blocks = blocks[1:]
    failures = [explain_from_text(body_text, block_failure(b)) for b in blocks if is_recipient_block(b)]
    return failures, per_message


def kind_of(failures: list[Failure]) -> Kind:
    """A report whose every recipient was delivered/relayed/expanded is a success notice."""
    actions = {f.action for f in failures}
    if actions and actions <= _OK_ACTIONS:
        return Kind.DELIVERED
    return Kind.BOUNCE


def needs_text(failure: Failure) -> bool:
    """True when the DSN fields left the recipient, the server's words, the command or a specific status unsaid."""
    return (
        not failure.recipient
        or not failure.diagnostic
        or failure.command is None  # the text part often names the SMTP stage (Exim, Postfix, sendmail)
        or failure.status is None
        or (is_generic_status(failure.status) and not (failure.reply_code or "").startswith(("4", "5")))
    )


# Words by which a text part names the SMTP stage; without one, a missing command is not worth a
# second reading of the message (keeps the common DSN on the fast path).
_STAGE_WORDS = re.compile(r"in reply to|after (?:RCPT|MAIL|DATA|end of data)|>>> |did not like our|SMTP:", re.I)


def text_can_help(mail: Mail, failures: list[Failure]) -> bool:
    """True unless the only gap is a missing command and the text never names an SMTP stage."""
    if any(needs_text(dataclasses.replace(f, command="-")) for f in failures):
        return True
    text = mail.text[:20000]
    # Every alternative of _STAGE_WORDS holds one of these; on ASCII text re.I folds only A-Z.
    if text.isascii():
        low = text.lower()
        if not any(w in low for w in ("in reply to", "after ", ">>> ", "did not like our", "smtp:")):
            return False
    return bool(_STAGE_WORDS.search(text))


def merge_text(failure: Failure, text: Failure) -> Failure:
    """Fill what a DSN block left unsaid from the same recipient's entry in the human-readable part."""
    status = failure.status
    # only a class-only Status (X.0.0) gives way: 4.4.7 is the outcome of an expiry and stays
    if text.status and (status is None or (status.endswith(".0.0") and not is_generic_status(text.status))):
        status = text.status
    take_words = not failure.diagnostic or (not failure.reply_code and bool(text.reply_code))
    return dataclasses.replace(
        failure,
        recipient=failure.recipient or text.recipient,
        status=status,
        diagnostic=text.diagnostic if take_words else failure.diagnostic,
        reply_code=failure.reply_code or text.reply_code,
        command=failure.command or text.command,
        remote_mta=failure.remote_mta or text.remote_mta,
        reason_hint=failure.reason_hint or text.reason_hint,
        hint_rule=failure.hint_rule or text.hint_rule,
        hint_evidence=failure.hint_evidence or text.hint_evidence,
    )


def fill_from_text(failures: list[Failure], explained: tuple[Failure, ...]) -> list[Failure]:
    """Pair DSN failures with text failures (by recipient, else one-to-one by position) and merge."""
    by_rcpt = {t.recipient: t for t in explained if t.recipient}
    out = []
    for i, f in enumerate(failures):
        if not needs_text(f):
            out.append(f)
            continue
        t = by_rcpt.get(f.recipient) if f.recipient else None
        if t is None and len(explained) == len(failures):
            t = explained[i]
        if t is None and len(explained) == 1 and len(failures) == 1:
            t = explained[0]
        out.append(merge_text(f, t) if t is not None else f)
    return out


# Mail gateways that send a DSN whose Diagnostic-Code carries the next hop's RCPT reply without saying
# so: for them, "no such user" wording is a recipient refused at RCPT TO, not a filter's words.
# (gateway, gate on the bounce's own headers, pattern in the diagnostic, rule id)
_GATEWAY_HINTS: tuple[tuple[str, re.Pattern[str], re.Pattern[str], str], ...] = (
    (
        "x-nai-header",  # McAfee Email Gateway / Email and Web Security appliances
        re.compile(r"Modified by McAfee", re.I),
        re.compile(r"\bUser \(.+@.+\) unknown\b|\bUnknown user\b|\bUser not exist|\bNo such user\b", re.I),
        "mcafee.user-unknown",
    ),
    (
        "from",  # Symantec / Broadcom MessageLabs
        re.compile(r"@messagelabs\.com\b", re.I),
        re.compile(r"\bNo such user\b|\bUnknown user\b|\bUser unknown\b|\bmailbox (?:not found|unavailable)\b", re.I),
        "messagelabs.user-unknown",
    ),
)


def gateway_hints(mail: Mail, failures: list[Failure]) -> list[Failure]:
    """Set a userunknown hint where a known gateway relays the next hop's RCPT refusal."""
    for header, gate, pattern, rule_id in _GATEWAY_HINTS:
        if not gate.search(mail.header(header)):
            continue
        out = []
        for f in failures:
            m = pattern.search(f.diagnostic) if f.diagnostic and not f.reason_hint else None
            if m and f.action != "delayed":
                f = dataclasses.replace(f, reason_hint="userunknown", hint_rule=rule_id, hint_evidence=m.group(0))
            out.append(f)
        return out
    return failures


class RFC3464:
    """Standard DSNs: a message/delivery-status part with one block per recipient.

    MTAs often put the server's words only in the human-readable part (OpenSMTPD, Exim with pipe
    deliveries, sendmail transcripts); ``explainers`` are text detectors asked to fill those gaps.
    """

    name = "rfc3464"

    def __init__(self, explainers: tuple[Detector, ...] = ()) -> None:
        self.explainers = explainers

    def explain(self, mail: Mail) -> tuple[Failure, ...]:
        """Failures the first matching text family reads from the human-readable part."""
        for explainer in self.explainers:
            explained = explainer.detect(mail)
            if explained is not None and explained.failures:
                return explained.failures
        return ()

    def detect(self, mail: Mail) -> Parsed | None:
        """Read a standard DSN."""
        status_text = mail.delivery_status
        if status_text is None:
            return None
        failures, per_message = failures_from_status_text(status_text, mail.text)
        if not failures:
            if not per_message:
                return None
            explained = self.explain(mail)
            if explained:
                failures = list(explained)
            elif _REPORT_UNAVAILABLE in mail.text:
                # Postfix says so when it could not write the per-recipient part: still a bounce,
                # for a recipient nobody can name.
                failures = [Failure(recipient=None, action="failed")]
            else:
                # RFC 3464 §2.3 requires at least one per-recipient block: nothing to record.
                return Parsed(
                    kind=Kind.UNKNOWN,
                    detector=self.name,
                    error="delivery-status part without a per-recipient block",
                    arrival_date=mail.arrival_date(),
                    reporting_mta=strip_type(per_message.get("reporting-mta", "")) or None,
                )
        failures = [f for f in failures if f.action not in _OK_ACTIONS] or failures
        if self.explainers and any(needs_text(f) for f in failures) and text_can_help(mail, failures):
            explained = self.explain(mail)
            if explained:
                failures = fill_from_text(failures, explained)
        failures = gateway_hints(mail, failures)
        headers = mail.original_headers()
        return Parsed(
            kind=kind_of(failures),
            detector=self.name,
            failures=tuple(failures),
            original_message_id=original_message_id(headers),
            original_headers=headers,
            arrival_date=block_date(per_message) or mail.arrival_date(),
            reporting_mta=strip_type(per_message.get("reporting-mta", "")) or None,
        )
