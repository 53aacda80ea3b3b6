"""IBM/HCL Lotus Notes and Domino text bounces."""

from __future__ import annotations

import re

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

_NOTES_START = "------- failure reasons"
_NOTES_END = "------- returned message"
# The router's fixed sentences for an address missing from the directory, in English and the
# Japanese Notes build; both state the user does not exist.
_HINTS = (
    Hint(
        re.compile(r"not listed in (?:public Name & Address Book|Domino Directory)|ディレクトリのリストにありません", re.I),
        "userunknown",
        "notes.not-in-directory",
    ),
)


def _is_notes(mail: Mail) -> bool:
    return _NOTES_START in mail.text[:600].lower()


def _is_domino(mail: Mail) -> bool:
    head = mail.text[:800]
    return "was not delivered to:" in head and "because:" in head


class Notes:
    """``------- Failure Reasons --------``: the reason first, then the addresses it applies to."""

    name = "notes"

    def detect(self, mail: Mail) -> Parsed | None:
        """Pair the reason lines with each address listed under them."""
        if not _is_notes(mail):
            return None
        text = mail.text
        low = text.lower()
        start = text.find("\n", low.find(_NOTES_START)) + 1
        end = low.find(_NOTES_END, start)
        report = text[start : end if end >= 0 else len(text)]
        own = own_addresses(mail)
        reasons: list[str] = []
        addrs: list[str] = []
        for line in report.splitlines():
            line = line.strip()
            if not line:
                continue
            m = ADDRESS_RE.fullmatch(line)
            if m:
                addr = m.group("addr").lower()
                if addr not in own and addr not in addrs:
                    addrs.append(addr)
            else:
                reasons.append(line)
        if not addrs:
            return None
        words = "\n".join(reasons)
        failures = [failure_from_words(a, words, hints=_HINTS) for a in addrs]
        return build_parsed(mail, self.name, failures, text[end:] if end >= 0 else "")


class Domino(TextDetector):
    """``Your message ... was not delivered to: <addr> because: <reason>``."""

    fmt = TextFormat(
        name="domino",
        gate=_is_domino,
        starts=("was not delivered to:",),
        ends=("reporting-mta:", "original message"),
        recipient=re.compile(r"^\s*" + ADDRESS + r"\s*(?P<rest>)$"),
        frame=re.compile(r"^because:"),
        hints=_HINTS,
    )
