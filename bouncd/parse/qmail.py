"""qmail (qmail-send/qmail-remote) and its descendants (netqmail, vpopmail, s/qmail, notqmail)."""

from __future__ import annotations

import re

from bouncd.parse.base import Mail
from bouncd.parse.textreport import ADDRESS, Hint, TextDetector, TextFormat

# qmail-send's bounce body: "Hi. This is the qmail-send program at HOST." then one
# "<address>:" paragraph per recipient, then "--- Below this line is a copy of the message."
QMAIL_RECIPIENT = re.compile(r"^" + ADDRESS + r":\s*(?P<rest>.*)$")
QMAIL_ENDS = (
    "--- below this line is a copy of the message",
    "--- enclosed are the original headers of the message",
    "--- original message follows",
    "--- below the next line is a copy of the message",
)
# qmail-remote frames the server's reply with its own sentences; they name the SMTP stage.
QMAIL_FRAME = re.compile(
    r"^(?:(?P<host>[\w.:\-\[\]]+) does not like recipient\.?|Remote host said:|Giving up on [\w.:\-\[\]]+\.?|"
    r"Connected to (?P<h2>[\w.:\-\[\]]+) but (?:sender was rejected|greeting failed|my name was rejected)\.?|"
    r"[\w.:\-\[\]]+ failed after I sent the message\.?|I'm not going to try again; .*)"
)
QMAIL_HINTS = (
    # qmail-send gives up after queuelifetime with this fixed sentence.
    Hint(
        re.compile(r"this message has been in the queue too long", re.I),
        "expired",
        "qmail.queue-lifetime",
        unless_status=True,
    ),
    # qmail-remote on an NXDOMAIN for the recipient's domain (#5.1.2).
    Hint(re.compile(r"Sorry, I couldn't find any host (?:named|by that name)", re.I), "hostunknown", "qmail.no-host"),
    # qmail-local: no such local user (#5.1.1).
    Hint(re.compile(r"Sorry, no mailbox here by that name", re.I), "userunknown", "qmail.no-mailbox"),
)


def _is_qmail(mail: Mail) -> bool:
    head = mail.text[:600].lower()
    return "this is the qmail-send program" in head or "this is the qmail" in head


class Qmail(TextDetector):
    """qmail-send's ``<address>:`` paragraphs."""

    fmt = TextFormat(
        name="qmail",
        gate=_is_qmail,
        starts=("this is the qmail",),
        ends=QMAIL_ENDS,
        recipient=QMAIL_RECIPIENT,
        hints=QMAIL_HINTS,
        frame=QMAIL_FRAME,
    )
