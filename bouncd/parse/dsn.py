"""RFC 3464 delivery status notifications (multipart/report; report-type=delivery-status)."""

from __future__ import annotations

import dataclasses
import re

from bouncd.parse.base import Mail, original_message_id, unfold
from bouncd.parse.fields import block_date, block_failure, is_recipient_block, parse_blocks, strip_type
from bouncd.records import Failure, Kind, Parsed

_FAIL_ACTIONS = {"failed", "delayed"}
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


class RFC3464:
    """Standard DSNs: a message/delivery-status part with one block per recipient."""

    name = "rfc3464"

    def detect(self, mail: Mail) -> Parsed | None:
        """Read a standard DSN."""
        status_text = mail.delivery_status
        if status_text is None:
            return None
        failures, per_message = failures_from_status_text(status_text, mail.text)
        if not failures:
            return None
        failures = [f for f in failures if f.action not in _OK_ACTIONS] or failures
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
