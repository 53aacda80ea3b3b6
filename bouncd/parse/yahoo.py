"""Yahoo! Mail (and Yahoo's outbound relays used by others): a qmail-shaped text bounce."""

from __future__ import annotations

from bouncd.parse.base import Mail
from bouncd.parse.qmail import QMAIL_ENDS, QMAIL_FRAME, QMAIL_HINTS, QMAIL_RECIPIENT
from bouncd.parse.textreport import TextDetector, TextFormat

_START = "sorry, we were unable to deliver your message to the following address"


def _is_yahoo(mail: Mail) -> bool:
    return _START in mail.text[:600].lower()


class Yahoo(TextDetector):
    """``Sorry, we were unable to deliver your message to the following address.`` then ``<addr>:``."""

    fmt = TextFormat(
        name="yahoo",
        gate=_is_yahoo,
        starts=(_START,),
        ends=QMAIL_ENDS,
        recipient=QMAIL_RECIPIENT,
        hints=QMAIL_HINTS,
        frame=QMAIL_FRAME,
    )
