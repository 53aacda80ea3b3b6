"""Amazon SES notifications delivered by email (SNS topic subscriptions): JSON, not a DSN.

One JSON object per message: ``notificationType`` (or ``eventType`` for configuration-set event
publishing) is ``Bounce``, ``Complaint`` or ``Delivery``; recipients and SMTP details are fields.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bouncd.address import normalize_address
from bouncd.parse.arf import complaint
from bouncd.parse.base import Mail, find_reply_code, find_status, unfold
from bouncd.parse.fields import strip_type
from bouncd.records import Failure, Kind, Parsed

_MAX_JSON = 512 * 1024
# SES bounce sub-types that state the reason outright (SES developer guide, "Bounce types").
_SUBTYPE_HINTS = {
    ("Permanent", "NoEmail"): "userunknown",
    ("Transient", "MailboxFull"): "mailboxfull",
    ("Transient", "MessageTooLarge"): "mesgtoobig",
}


def _is_ses_notification(mail: Mail) -> bool:
    sender = mail.sender.lower()
    if "amazonaws.com" not in sender and "amazonses.com" not in sender:
        return False
    return mail.text.lstrip()[:1] == "{"


def load_notification(text: str) -> dict[str, Any] | None:
    """The notification object: the body's JSON (SNS wraps it in ``Message``), tolerating wrapped lines."""
    body = text.lstrip()[:_MAX_JSON]
    end = body.find("\n--\n")
    if end > 0:
        body = body[:end]
    data: Any = None
    for candidate in (body, re.sub(r"\r?\n ?", "", body)):
        try:
            data = json.loads(candidate)
            break
        except ValueError:
            continue
    if isinstance(data, dict) and isinstance(data.get("Message"), str):
        try:
            data = json.loads(data["Message"])
        except ValueError:
            return None
    return data if isinstance(data, dict) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class AmazonSESNotification:
    """SES Bounce/Complaint/Delivery notifications."""

    name = "amazonses-json"

    def detect(self, mail: Mail) -> Parsed | None:
        """Read the notification's recipients and SMTP details."""
        if not _is_ses_notification(mail):
            return None
        data = load_notification(mail.text)
        if data is None:
            return None
        kind = str(data.get("notificationType") or data.get("eventType") or "")
        headers = tuple(
            (str(h.get("name", "")), str(h.get("value", "")))
            for h in _list(_dict(data.get("mail")).get("headers"))
            if isinstance(h, dict)
        )
        message_id = _dict(data.get("mail")).get("messageId")
        original_id = str(message_id) if message_id else None
        when = mail.arrival_date()

        def report(kind: Kind, failures: list[Failure], **extra: Any) -> Parsed:
            return Parsed(
                kind=kind,
                detector=self.name,
                failures=tuple(failures),
                original_message_id=original_id,
                original_headers=headers[:60],
                arrival_date=when,
                **extra,
            )

        if kind == "Bounce":
            bounce = _dict(data.get("bounce"))
            hint = _SUBTYPE_HINTS.get((str(bounce.get("bounceType")), str(bounce.get("bounceSubType"))))
            failures = []
            for r in _list(bounce.get("bouncedRecipients")):
                r = _dict(r)
                diagnostic = unfold(strip_type(str(r.get("diagnosticCode") or "")))
                status = find_status(str(r.get("status") or "")) or find_status(diagnostic)
                failures.append(
                    Failure(
                        recipient=normalize_address(str(r.get("emailAddress") or "")),
                        action=str(r.get("action") or "failed").lower(),
                        status=status,
                        reply_code=find_reply_code(diagnostic, status) if diagnostic else None,
                        diagnostic=diagnostic,
                        remote_mta=strip_type(str(bounce.get("remoteMtaIp") or "")) or None,
                        reason_hint=hint,
                        hint_rule="amazonses.bounce-subtype" if hint else None,
                        hint_evidence=f"bounceSubType: {bounce.get('bounceSubType')}" if hint else "",
                    )
                )
            if not failures:
                return None
            reporting = strip_type(str(bounce.get("reportingMTA") or "")) or None
            return report(Kind.BOUNCE, failures, reporting_mta=reporting)
        if kind == "Complaint":
            c = _dict(data.get("complaint"))
            ftype = str(c.get("complaintFeedbackType") or "abuse").lower()
            rcpts = [normalize_address(str(_dict(r).get("emailAddress") or "")) for r in _list(c.get("complainedRecipients"))]
            failures = [complaint(r, ftype) for r in rcpts] or [complaint(None, ftype)]
            return report(Kind.FEEDBACK, failures, feedback_type=ftype)
        if kind == "Delivery":
            d = _dict(data.get("delivery"))
            response = unfold(str(d.get("smtpResponse") or ""))
            status = find_status(response)
            failures = [
                Failure(
                    recipient=normalize_address(str(r)),
                    action="delivered",
                    status=status,
                    reply_code=find_reply_code(response, status) if response else None,
                    diagnostic=response,
                )
                for r in _list(d.get("recipients"))
            ]
            if not failures:
                return None
            reporting = strip_type(str(d.get("reportingMTA") or "")) or None
            return report(Kind.DELIVERED, failures, reporting_mta=reporting)
        return None
