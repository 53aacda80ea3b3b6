"""OpenSMTPD's text bounce (``smtpd/bounce.c``): ``address: reason`` lines under a fixed introduction."""

from __future__ import annotations

import re

from bouncd.parse.base import Mail
from bouncd.parse.textreport import ADDRESS, Hint, TextDetector, TextFormat


def _is_opensmtpd(mail: Mail) -> bool:
    return "This is the MAILER-DAEMON, please DO NOT REPLY" in mail.text[:600]


class OpenSMTPD(TextDetector):
    """``An error has occurred ... for the following list of recipients:`` then ``addr: reason``."""

    fmt = TextFormat(
        name="opensmtpd",
        gate=_is_opensmtpd,
        starts=("list of recipients:",),
        ends=("below is a copy of the original message", "please note that this is only a temporary failure"),
        recipient=re.compile(r"^" + ADDRESS + r":\s*(?P<rest>.*)$"),
        delayed=("delivery status notification: warning", "a message is delayed"),
        hints=(
            # bounce.c: the envelope outlived its expiry ("Envelope expired").
            Hint(re.compile(r"^Envelope expired\b", re.I), "expired", "opensmtpd.envelope-expired"),
        ),
    )
