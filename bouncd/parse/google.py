"""Gmail's older text bounces and Google Groups' refusals (both from mailer-daemon@googlemail.com)."""

from __future__ import annotations

import re

from bouncd.parse.base import Mail
from bouncd.parse.textreport import (
    ADDRESS,
    TextDetector,
    TextFormat,
    build_parsed,
    failed_recipients_header,
    failure_from_words,
    own_addresses,
)
from bouncd.records import Failure, Parsed


def _from_google(mail: Mail) -> bool:
    sender = mail.sender.lower()
    return "googlemail.com" in sender or "@google.com" in sender or "gmail.com" in sender


def _is_gmail(mail: Mail) -> bool:
    return _from_google(mail) and "delivery to the following recipient" in mail.text[:1500].lower()


class Gmail(TextDetector):
    """``Delivery to the following recipient failed permanently:`` then ``Technical details of ... failure:``."""

    fmt = TextFormat(
        name="gmail",
        gate=_is_gmail,
        starts=("delivery to the following recipient",),
        ends=("----- original message -----", "----- message truncated -----"),
        recipient=re.compile(r"^\s+" + ADDRESS + r"\s*(?P<rest>)$"),
        frame=re.compile(
            r"^(?:Technical details of (?:permanent|temporary) failure:|The error that the other server returned was:|"
            r"Message will be retried for .*)"
        ),
        delayed=("(delay)", "has been delayed", "technical details of temporary failure"),
    )


class GoogleGroups:
    """A post refused by Google Groups: the group named in X-Failed-Recipients does not take it from us.

    The body is localised to the sender's language; the header and the From are not.
    """

    name = "googlegroups"

    def detect(self, mail: Mail) -> Parsed | None:
        """The group address from X-Failed-Recipients; the reason is fixed: the post was refused."""
        if not _from_google(mail):
            return None
        groups = failed_recipients_header(mail)
        text = mail.text
        if not groups or ("Google Groups" not in text and "groups.google" not in text and "googlegroups" not in text):
            return None
        own = own_addresses(mail)
        words = " ".join(line.strip() for line in text.split("----- Original message -----", 1)[0].splitlines()[:12])
        failures: list[Failure] = []
        for addr in groups:
            if addr in own:
                continue
            f = failure_from_words(addr, words)
            failures.append(
                Failure(
                    recipient=f.recipient,
                    action="failed",
                    diagnostic=f.diagnostic,
                    # Google Groups sends this only when the group refused the post from this sender
                    # (not a member, no permission, or no such group): the sender was rejected.
                    reason_hint="rejected",
                    hint_rule="googlegroups.post-refused",
                    hint_evidence="X-Failed-Recipients: " + addr,
                )
            )
        if not failures:
            return None
        return build_parsed(mail, self.name, failures)
