"""RFC 3834 automatic responses (vacation, out-of-office): they reach the bounce address but are not bounces."""

from __future__ import annotations

import re

from bouncd.address import normalize_address
from bouncd.parse.base import Mail
from bouncd.records import Failure, Kind, Parsed

_SUBJECT = re.compile(
    r"^(?:auto(?:matic)?[ -]?(?:reply|response|antwort|réponse)|out of (?:the )?office|abwesenheit|"
    r"absence|vacation|on vacation|away from (?:my|the) (?:desk|office)|autoreply|respuesta automática|"
    r"risposta automatica|automatisch antwoord|自動応答|不在)\b",
    re.I,
)
_BOUNCE_WORDS = re.compile(
    r"undeliver|delivery (?:status|failure|has failed)|returned mail|failure notice|mail delivery|"
    r"could not be delivered|delivery notification",
    re.I,
)


class AutoReply:
    """Auto-Submitted: auto-replied (RFC 3834 §5), Microsoft/other auto-reply headers, or a vacation subject."""

    name = "rfc3834"

    def detect(self, mail: Mail) -> Parsed | None:
        """Recognise an auto-reply that is not a delivery report."""
        auto = mail.header("Auto-Submitted").lower()
        subject = mail.subject
        if _BOUNCE_WORDS.search(subject):
            return None
        signals = (
            auto.startswith("auto-replied"),
            bool(mail.header("X-Autoreply") or mail.header("X-Autorespond")),
            mail.header("X-Auto-Response-Suppress") != "" and bool(_SUBJECT.search(subject)),
            bool(_SUBJECT.search(subject)),
        )
        if not any(signals):
            return None
        addr = normalize_address(mail.header("Reply-To")) or normalize_address(mail.sender)
        return Parsed(
            kind=Kind.VACATION,
            detector=self.name,
            failures=(
                Failure(
                    recipient=addr,
                    diagnostic=subject,
                    reason_hint="vacation",
                    hint_rule="rfc3834.auto-reply",
                    hint_evidence=f"Auto-Submitted: {auto}" if auto else f"Subject: {subject}",
                ),
            ),
            arrival_date=mail.arrival_date(),
        )
