"""Microsoft Exchange 2003 and earlier (IMC/IMS): text NDRs, ``addr on date`` then the reason."""

from __future__ import annotations

import re

from bouncd.parse.base import Mail
from bouncd.parse.textreport import ADDRESS, TextDetector, TextFormat

_STARTS = ("did not reach the following recipient(s):", "the following recipient(s) could not be reached:")


def _is_exchange2003(mail: Mail) -> bool:
    head = mail.text[:1500].lower()
    return any(s in head for s in _STARTS)


class Exchange2003(TextDetector):
    """``addr on Thu, 29 Apr 2010 ...`` then indented reason lines (and the MSEXCH diagnostic)."""

    fmt = TextFormat(
        name="exchange2003",
        gate=_is_exchange2003,
        starts=_STARTS,
        recipient=re.compile(r"^\s*" + ADDRESS + r" on .*$"),
    )
