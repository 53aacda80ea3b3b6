"""Small MTAs, filtering gateways and hosted services with a fixed text layout of their own.

MailMarshal (Trustwave), InterScan MSS (Trend Micro), MailFoundry, IMail (Ipswitch), Smail 3,
Zoho Mail, Verizon's MMS gateway, and the anonymised X2/X3/X4/X6 families of Sisimai's test set.
"""

from __future__ import annotations

import re

from bouncd.address import normalize_address
from bouncd.parse.base import Mail
from bouncd.parse.qmail import QMAIL_ENDS, QMAIL_FRAME, QMAIL_HINTS, QMAIL_RECIPIENT
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




# --- qmail-derived templates of hosted mail services (X2, X4 in Sisimai's naming) -------------


def _is_x2(mail: Mail) -> bool:
    return "unable to deliver message to the following address(es)" in mail.text[:400].lower()


def _is_x4(mail: Mail) -> bool:
    return "your mail message to the following address(es) could not be delivered" in mail.text[:400].lower()


class X2(TextDetector):
    """``Message from host.`` / ``Unable to deliver message to the following address(es).`` / ``<addr>:``."""

    fmt = TextFormat(
        name="x2",
        gate=_is_x2,
        starts=("unable to deliver message to the following address(es)",),
        ends=QMAIL_ENDS,
        recipient=QMAIL_RECIPIENT,
        hints=QMAIL_HINTS,
        frame=QMAIL_FRAME,
    )


class X4(TextDetector):
    """``Your mail message to the following address(es) could not be delivered.`` then ``<addr>:``."""

    fmt = TextFormat(
        name="x4",
        gate=_is_x4,
        starts=("could not be delivered",),
        ends=QMAIL_ENDS,
        recipient=QMAIL_RECIPIENT,
        hints=QMAIL_HINTS,
        frame=QMAIL_FRAME,
    )


# --- Ipswitch IMail Server ----------------------------------------------------------------------


def _is_imail(mail: Mail) -> bool:
    if mail.subject.strip().lower() != "undeliverable mail":
        return False
    low = mail.text.lower()
    return "original message follows" in low or "body of message generated response" in low


class IMailServer(TextDetector):
    """``<reason>: addr`` lines (``Invalid final delivery userid: a@b``, ``undeliverable to a@b``)."""

    fmt = TextFormat(
        name="imailserver",
        gate=_is_imail,
        ends=("original message follows",),
        # the reason is the words in front of the address; at least two of them, so that a quoted
        # "To: addr" header line is not taken for a failure
        recipient=re.compile(r"^(?P<rest>[A-Za-z][^:@\n]*\s[^:@\n]*?):?\s+" + ADDRESS + r"\s*$"),
        frame=re.compile(r"^Body of message generated response:"),
        require_start=False,
        hints=(
            # IMail's queue gives up with "Delivery failed N attempts: addr".
            Hint(re.compile(r"^Delivery failed \d+ attempts", re.I), "expired", "imail.attempts-exhausted"),
            # IMail's local delivery: the mailbox does not exist on this server.
            Hint(re.compile(r"^Invalid final delivery userid", re.I), "userunknown", "imail.invalid-userid"),
        ),
    )


# --- Trend Micro InterScan Messaging Security Suite ----------------------------------------------


def _is_interscan(mail: Mail) -> bool:
    return "InterScan" in mail.text[:400] or "InterScan" in mail.sender


class InterScanMSS(TextDetector):
    """``Unable to deliver message to <addr> (and other recipients in the same domain).``"""

    fmt = TextFormat(
        name="interscanmss",
        gate=_is_interscan,
        # the whole sentence is the words: the address sits in its middle
        recipient=re.compile(r"^(?=(?P<rest>.*))\s*(?:Reason:\s*)?Unable to deliver message to " + ADDRESS),
        frame=re.compile(r"^\*{5,}.*$"),
        require_start=False,
        hints=(
            # InterScan words a recipient its next hop refused at RCPT TO this way; other failures
            # (spam, size, virus) carry their own sentence and never this one.
            Hint(
                re.compile(r"Unable to deliver message to .*\(and other recipients in the same domain\)", re.I),
                "userunknown",
                "interscanmss.recipient-refused",
            ),
        ),
    )


# --- MailFoundry ----------------------------------------------------------------------------------


def _is_mailfoundry(mail: Mail) -> bool:
    return "delivery failed for the following reason:" in mail.text[:600].lower()


class MailFoundry(TextDetector):
    """``Unable to deliver message to: <addr>`` / ``Server X failed with: 550 ...``."""

    fmt = TextFormat(
        name="mailfoundry",
        gate=_is_mailfoundry,
        ends=("this has been a permanent failure",),
        recipient=re.compile(r"^Unable to deliver message to:\s*" + ADDRESS + r"\s*(?P<rest>)$"),
        frame=re.compile(r"^(?:Delivery failed for the following reason:|Server (?P<host>[\w.\-]+)(?:\[[^\]]*\])? failed with:)"),
        require_start=False,
    )


# --- Smail 3 ------------------------------------------------------------------------------------


def _is_smail(mail: Mail) -> bool:
    return "failed addresses follow:" in mail.text[:2000].lower()


class Smail(TextDetector):
    """``|---- Failed addresses follow: ----|`` then `` addr ... reason``."""

    fmt = TextFormat(
        name="smail",
        gate=_is_smail,
        starts=("failed addresses follow:",),
        ends=("message text follows:",),
        recipient=re.compile(r"^\s*" + ADDRESS + r"\s*\.\.\.\s*(?P<rest>.*)$"),
    )


# --- Zoho Mail ----------------------------------------------------------------------------------


def _is_zoho(mail: Mail) -> bool:
    sender = mail.sender.lower()
    return "zoho" in sender and "created automatically by mail delivery software" in mail.text[:400].lower()


class Zoho(TextDetector):
    """``addr Invalid Address, ERROR_CODE :550, ERROR_CODE :5.1.1 ...`` lines after the introduction."""

    fmt = TextFormat(
        name="zoho",
        gate=_is_zoho,
        starts=("created automatically by mail delivery software",),
        ends=("received:",),
        recipient=re.compile(r"^" + ADDRESS + r"\s+(?P<rest>\S.*)$"),
    )


# --- fml (mailing list manager) -------------------------------------------------------------------

_FML_NOT_MEMBER = re.compile(r"You are not a member of this mailing list\s*" + ADDRESS, re.I)


class FML:
    """fml's refusal of a post from a non-member: the list named in the sentence refused our sender."""

    name = "fml"

    def detect(self, mail: Mail) -> Parsed | None:
        """The list address is the failed recipient; the reason is fixed (the sender was refused)."""
        m = _FML_NOT_MEMBER.search(mail.text[:2000])
        if m is None:
            return None
        addr = normalize_address(m.group("addr"))
        hint = (Hint(re.compile(r"You are not a member of this mailing list", re.I), "rejected", "fml.not-member"),)
        return build_parsed(mail, self.name, [failure_from_words(addr, m.group(0), hints=hint)])
