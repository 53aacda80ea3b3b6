"""RFC 5965 Abuse Reporting Format complaints, and the few non-standard complaint formats in use."""

from __future__ import annotations

import re

from bouncd.address import normalize_address
from bouncd.parse.base import Mail, decode_part, original_message_id
from bouncd.parse.fields import parse_blocks
from bouncd.records import Failure, Kind, Parsed

_RECIPIENT_KEYS = ("original-rcpt-to", "removal-recipient")


class ARF:
    """``multipart/report; report-type=feedback-report`` with a message/feedback-report part."""

    name = "arf"

    def detect(self, mail: Mail) -> Parsed | None:
        """Read an RFC 5965 report: one result per reported recipient."""
        report = next(iter(mail.parts_of_type("message/feedback-report")), None)
        if report is None:
            return None
        payload = report.get_payload()
        if isinstance(payload, list):  # parsed as header blocks by the email package
            text = "\n".join("".join(f"{k}: {v}\n" for k, v in b.items()) for b in payload if not isinstance(b, str))
        else:
            text = decode_part(report)
        fields: list[tuple[str, str]] = []
        for block in parse_blocks(text):
            fields.extend(block.items())
        # RFC 5965 §3.2 allows Original-Rcpt-To more than once; parse_blocks keeps the first per
        # block, so read the raw lines for every occurrence.
        recipients: list[str | None] = []
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() in _RECIPIENT_KEYS:
                addr = normalize_address(value)
                if addr and addr not in recipients:
                    recipients.append(addr)
        headers = mail.original_headers()
        if not recipients:
            for k, v in headers:
                if k.lower() == "to":
                    addr = normalize_address(v)
                    if addr:
                        recipients.append(addr)
                    break
        ftype = dict(fields).get("feedback-type", "abuse").strip().lower() or "abuse"
        return Parsed(
            kind=Kind.FEEDBACK,
            detector=self.name,
            failures=tuple(complaint(r, ftype) for r in recipients or [None]),
            original_message_id=original_message_id(headers),
            original_headers=headers,
            arrival_date=mail.arrival_date(),
            feedback_type=ftype,
        )


def complaint(recipient: str | None, feedback_type: str) -> Failure:
    """A complaint row."""
    return Failure(
        recipient=recipient,
        diagnostic=f"Feedback-Type: {feedback_type}",
        reason_hint="feedback",
        hint_rule="arf.feedback-type",
        hint_evidence=f"Feedback-Type: {feedback_type}",
    )


_HOTMAIL_SUBJECT = re.compile(r"^complaint about message from ", re.I)


class NonStandardComplaint:
    """Complaints that are not RFC 5965: Hotmail/Outlook JMRP forwards, Apple Mail's unsubscribe."""

    name = "complaint-nonstandard"

    def detect(self, mail: Mail) -> Parsed | None:
        """Read a JMRP-style forward (original attached as message/rfc822) or an Apple unsubscribe."""
        if mail.header("X-Apple-Unsubscribe").lower() == "true":
            addr = normalize_address(mail.sender)
            return Parsed(
                kind=Kind.FEEDBACK,
                detector=self.name,
                failures=(complaint(addr, "opt-out"),),
                arrival_date=mail.arrival_date(),
                feedback_type="opt-out",
            )
        sender = mail.sender.lower()
        if _HOTMAIL_SUBJECT.match(mail.subject) and ("hotmail" in sender or "outlook" in sender):
            headers = mail.original_headers()
            addr = None
            for k, v in headers:
                if k.lower() == "to":
                    addr = normalize_address(v)
                    break
            return Parsed(
                kind=Kind.FEEDBACK,
                detector=self.name,
                failures=(complaint(addr, "abuse"),),
                original_message_id=original_message_id(headers),
                original_headers=headers,
                arrival_date=mail.arrival_date(),
                feedback_type="abuse",
            )
        return None
