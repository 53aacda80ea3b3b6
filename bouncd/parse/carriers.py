"""Japanese mobile carriers' own bounce formats: au by KDDI (EZweb, dion) and NTT docomo."""

from __future__ import annotations

import re

from bouncd.parse.base import Mail
from bouncd.parse.textreport import ADDRESS, Hint, TextDetector, TextFormat

_EZWEB_INTRO = "each of the following recipients was rejected by a remote"


def _is_ezweb(mail: Mail) -> bool:
    sender = mail.sender.lower()
    return "ezweb.ne.jp" in sender or _EZWEB_INTRO in mail.text[:1500].lower()


def _is_kddi(mail: Mail) -> bool:
    sender = mail.sender.lower()
    return ("dion.ne.jp" in sender or "au.com" in sender or "kddi" in sender) and "could not be delivered to:" in (
        mail.text[:1500].lower()
    )


class EZweb(TextDetector):
    """``Recipient: <addr>`` then the ``>>>``/``<<<`` exchange with the remote server."""

    fmt = TextFormat(
        name="ezweb",
        gate=_is_ezweb,
        ends=("received: from", "--------------------"),
        recipient=re.compile(r"^\s*(?:Recipient:\s*)?" + ADDRESS + r"\s*(?P<rest>)$"),
        frame=re.compile(r"^(?:>>> .*|<<<)"),
        require_start=False,
        hints=(
            # au's fixed sentence when its queue gave up on the remote host.
            Hint(
                re.compile(r"Your message was not delivered within \d+ days and \d+ hours", re.I),
                "expired",
                "ezweb.not-delivered-within",
            ),
        ),
    )


class KDDI(TextDetector):
    """``Could not be delivered to: <addr>`` then a fixed English reason."""

    fmt = TextFormat(
        name="kddi",
        gate=_is_kddi,
        recipient=re.compile(r"^\s*Could not be delivered to:\s*" + ADDRESS + r"\s*(?P<rest>)$"),
        require_start=False,
        hints=(
            # au's mail server's fixed sentence for an over-quota mailbox.
            Hint(re.compile(r"As their mailbox is full", re.I), "mailboxfull", "kddi.mailbox-full"),
        ),
    )
