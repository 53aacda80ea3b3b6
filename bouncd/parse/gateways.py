"""Small filtering gateways and appliances with a fixed text layout of their own.

MailMarshal (Trustwave), X6-style web gateways, Verizon's MMS gateway.
"""

from __future__ import annotations

import re

from bouncd.address import normalize_address
from bouncd.parse.base import Mail
from bouncd.parse.textreport import (
    ADDRESS,
    ADDRESS_RE,
    Hint,
    TextDetector,
    TextFormat,
    build_parsed,
    failure_from_words,
    own_addresses,
)
from bouncd.records import Parsed


class MailMarshal:
    """``Could not be delivered because of`` <reason> ``The following recipients were affected:`` <addrs>."""

    name = "mailmarshal"

    def detect(self, mail: Mail) -> Parsed | None:
        """The reason comes before the recipients it applies to."""
        text = mail.text
        low = text.lower()
        cause = low.find("could not be delivered because of")
        affected = low.find("the following recipients were affected")
        if cause < 0 or affected < cause:
            return None
        words = text[text.find("\n", cause) + 1 : affected]
        own = own_addresses(mail)
        addrs: list[str] = []
        for line in text[text.find("\n", affected) + 1 :].splitlines():
            if not line.strip():
                if addrs:
                    break
                continue
            m = ADDRESS_RE.search(line)
            if not m:
                break
            addr = normalize_address(m.group("addr"))
            if addr and addr not in own:
                addrs.append(addr)
        if not addrs:
            return None
        return build_parsed(mail, self.name, [failure_from_words(a, words) for a in addrs])


def _is_x6(mail: Mail) -> bool:
    return "we had trouble delivering your message" in mail.text[:300].lower()


class X6(TextDetector):
    """``The following recipients returned permanent errors: <addr>. Reason: ...`` on one line."""

    fmt = TextFormat(
        name="x6",
        gate=_is_x6,
        recipient=re.compile(
            r"^The following recipients returned (?:permanent|temporary) errors:\s*" + ADDRESS + r"\.?\s*(?P<rest>.*)$"
        ),
        frame=re.compile(r"^Reason:\s*"),
        require_start=False,
        delayed=("returned temporary errors",),
    )


def _is_x3(mail: Mail) -> bool:
    head = mail.text[:800].lower()
    return "this is an automatically generated delivery status notification" in head and (
        "to the following recipients" in head
    )


class X3(TextDetector):
    """``Delevery to the following recipients failed permanently:`` / ``* addr`` / ``Technical details:``."""

    fmt = TextFormat(
        name="x3",
        gate=_is_x3,
        starts=("to the following recipients",),
        recipient=re.compile(r"^\s*\*\s*" + ADDRESS + r"\s*(?P<rest>)$"),
        frame=re.compile(r"^(?:=+|Technical details:|SMTP:[A-Z]+ host [^:]+:)"),
        hints=(
            # The gateway's own give-up sentence: the queue time ran out.
            Hint(re.compile(r"was aborted after \d+(?:\.\d+)? hour", re.I), "expired", "x3.aborted-after"),
        ),
    )

    def prepare(self, report: str) -> str:
        """The give-up sentence sits above the address list; repeat it into every recipient's words."""
        return report


_VZW_TO = re.compile(r"^To:\s*(.+)$", re.M | re.I)


class Verizon:
    """Verizon Wireless MMS gateway: ``Message could not be delivered to mobile.`` and an ``Error:`` line."""

    name = "verizon"

    def detect(self, mail: Mail) -> Parsed | None:
        """The recipient is the To of the quoted original."""
        text = mail.text
        if "message could not be delivered to mobile" not in text[:300].lower():
            return None
        err = re.search(r"^Error:\s*(.+)$", text, re.M)
        words = err.group(1) if err else "Message could not be delivered to mobile."
        idx = text.lower().find("original message:")
        addr = None
        if idx >= 0:
            m = _VZW_TO.search(text, idx)
            addr = normalize_address(m.group(1)) if m else None
        hint = (Hint(re.compile(r"No valid recipients for this MM", re.I), "userunknown", "verizon.no-valid-recipient"),)
        return build_parsed(mail, self.name, [failure_from_words(addr, words, hints=hint)])


__all__ = ["ADDRESS", "X3", "X6", "MailMarshal", "Verizon"]
