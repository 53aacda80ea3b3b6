"""Postfix bounces whose delivery-status part is missing: read the text part (``bounce(8)`` templates)."""

from __future__ import annotations

import re

from bouncd.parse.base import Mail
from bouncd.parse.textreport import ADDRESS, TextDetector, TextFormat

_STARTS = ("this is the postfix program", "this is the mail system at host")


def _is_postfix(mail: Mail) -> bool:
    head = mail.text[:800].lower()
    return any(s in head for s in _STARTS)


class Postfix(TextDetector):
    """``<addr>: host X[ip] said: 550 ... (in reply to RCPT TO command)`` paragraphs."""

    fmt = TextFormat(
        name="postfix",
        gate=_is_postfix,
        starts=_STARTS,
        ends=("--- delivery report unavailable", "content-description: delivery report", "content-type: message/"),
        recipient=re.compile(r"^" + ADDRESS + r"(?: \(expanded from <[^>]*>\))?:\s*(?P<rest>.*)$"),
        blank_ends_segment=True,
        frame=re.compile(r"^(?:host (?P<host>[\w.\-]+)\[[^\]]*\] said:)"),
        delayed=("delayed mail", "delivery status notification (delay)"),
    )
