"""RFC 3464 fields pasted into a text body: a DSN whose MIME structure was lost or never built.

Amazon WorkMail writes its "Technical report" as text/plain; Sun/Oracle Messaging Server (PMDF)
and old sendmail builds send multipart/report bodies whose boundaries do not parse. The fields are
still there, one block per recipient.
"""

from __future__ import annotations

import dataclasses
import re

from bouncd.parse.base import Detector, Mail
from bouncd.parse.dsn import failures_from_status_text, fill_from_text, kind_of, needs_text, text_can_help
from bouncd.parse.fields import block_date, strip_type
from bouncd.parse.textreport import build_parsed
from bouncd.records import Parsed

_FIRST_FIELD = re.compile(r"^(?:Reporting-MTA|Original-Recipient|Final-Recipient|Action)\s*:", re.I | re.M)
_OK_ACTIONS = {"delivered", "relayed", "expanded"}


class EmbeddedDSN:
    """``Final-Recipient:``/``Action:``/``Status:`` blocks in the body text."""

    name = "dsn-in-text"

    def __init__(self, explainers: tuple[Detector, ...] = ()) -> None:
        self.explainers = explainers

    def detect(self, mail: Mail) -> Parsed | None:
        """Read DSN fields from the human-readable text."""
        text = mail.text
        if "final-recipient:" not in text.lower():
            return None
        m = _FIRST_FIELD.search(text)
        if m is None:
            return None
        failures, per_message = failures_from_status_text(text[m.start() :], text[: m.start()])
        failures = [f for f in failures if f.recipient and (f.action or f.status)]
        if not failures:
            return None
        failures = [f for f in failures if f.action not in _OK_ACTIONS] or failures
        if self.explainers and any(needs_text(f) for f in failures) and text_can_help(mail, failures):
            for explainer in self.explainers:
                explained = explainer.detect(mail)
                if explained is not None and explained.failures:
                    failures = fill_from_text(failures, explained.failures)
                    break
        parsed = build_parsed(mail, self.name, failures, kind=kind_of(failures))
        return dataclasses.replace(
            parsed,
            arrival_date=block_date(per_message) or parsed.arrival_date,
            reporting_mta=strip_type(per_message.get("reporting-mta", "")) or None,
        )
