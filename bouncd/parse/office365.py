"""Exchange Online / Office 365 / Exchange 2010+ non-delivery reports sent as text (no DSN part)."""

from __future__ import annotations

import re

from bouncd.parse.base import Mail
from bouncd.parse.textreport import ADDRESS, TextDetector, TextFormat

_MARKERS = ("Delivery has failed to these recipients or groups", "Your message to ", "couldn't be delivered")


def _is_office365(mail: Mail) -> bool:
    head = mail.text[:1500]
    return _MARKERS[0] in head or ("Diagnostic information for administrators" in mail.text and _MARKERS[2] in head)


class Office365(TextDetector):
    """``Diagnostic information for administrators:`` then the address and ``Remote Server returned '...'``."""

    fmt = TextFormat(
        name="office365",
        gate=_is_office365,
        starts=("diagnostic information for administrators:",),
        ends=("original message headers:",),
        recipient=re.compile(r"^\s*" + ADDRESS + r"(?:<mailto:[^>]*>)?\s*(?P<rest>)$"),
        frame=re.compile(r"^(?:Remote Server returned|Remote server returned)\s*|^Generating server: (?P<host>\S+)"),
    )
