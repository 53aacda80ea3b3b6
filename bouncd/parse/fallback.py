"""Last resort: flufl.bounce's detectors find the failed addresses in formats no detector of ours knows.

Only the addresses are taken. flufl.bounce's permanent/temporary split is not a hard/soft verdict (its
"permanent" includes spam, policy and mailbox-full rejections), so every address found here goes to the
classifier with the message text as its evidence.
"""

from __future__ import annotations

import logging
import re

from flufl.bounce import all_failures

from bouncd.address import normalize_address
from bouncd.parse import mime
from bouncd.parse.base import Mail, find_reply_code, find_status, unfold
from bouncd.records import Failure, Kind, Parsed

# flufl.bounce logs a traceback for every detector that trips over a malformed header and then
# re-raises; we catch that below, so its own log would only repeat it (one traceback per message).
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

_FLUFL_MAX_BYTES = 64 * 1024
_ERROR_LINE = re.compile(r"^.*\b(?:[45]\d\d|[45]\.\d{1,3}\.\d{1,3})\b.*$", re.M)


class FluflFallback:
    """Addresses from flufl.bounce; diagnostics from the text around them."""

    name = "flufl"

    def detect(self, mail: Mail) -> Parsed | None:
        """Run flufl.bounce and classify what it found with our own rules."""
        if not isinstance(mail.msg.get("From", ""), str):
            return None  # a raw-bytes header comes back as a Header object some flufl detectors cannot read
        msg = mail.msg
        if len(mail.raw) > _FLUFL_MAX_BYTES:
            # flufl's line-by-line heuristics are quadratic on giant parts (seconds for 5 MB of hostile
            # input); a real bounce names its recipients near the top, so read only the head.
            msg = mime.message_from_bytes(mail.raw[:_FLUFL_MAX_BYTES])
        try:
            temporary, permanent = all_failures(msg)
        except Exception:  # flufl detectors index into headers without checks (Yale: empty From)
            return None
        not_recipients = _not_recipients(mail)
        found: list[str] = []
        for raw in list(permanent) + list(temporary):
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            addr = normalize_address(text)
            if addr and addr not in found and addr not in not_recipients:
                found.append(addr)
        if not found:
            return None
        text = mail.text
        failures = []
        for addr in found:
            diagnostic = diagnostic_near(text, addr)
            failures.append(
                Failure(
                    recipient=addr,
                    action="failed",
                    status=find_status(diagnostic),
                    reply_code=find_reply_code(diagnostic),
                    diagnostic=diagnostic,
                )
            )
        return Parsed(kind=Kind.BOUNCE, detector=self.name, failures=tuple(failures),
                      original_headers=mail.original_headers(), arrival_date=mail.arrival_date())


def _not_recipients(mail: Mail) -> frozenset[str]:
    """Addresses flufl's looser detectors pick up that are never the failed recipient.

    The bounce's author, and the returned original's sender and Message-ID (Zoho and others quote
    the original's headers in the body, where "From:" and "Message-ID:" look like addresses).
    """
    out = set()
    for name in ("From", "Sender"):
        addr = normalize_address(mail.header(name))
        if addr:
            out.add(addr)
    text = mail.text
    for m in _QUOTED_HEADER.finditer(text):
        addr = normalize_address(m.group(1))
        if addr:
            out.add(addr)
    orig = mail.original
    if orig is not None:
        for name in ("From", "Sender", "Return-Path", "Message-ID"):
            try:
                addr = normalize_address(str(orig.get(name, "")))
            except Exception:
                addr = None
            if addr:
                out.add(addr)
    return frozenset(out)


_QUOTED_HEADER = re.compile(r"^(?:From|Sender|Return-Path|Message-ID|Reply-To)\s*:\s*(.+)$", re.I | re.M)


def diagnostic_near(text: str, address: str) -> str:
    """The paragraph naming ``address``, or the first line that carries an SMTP code."""
    low = text.lower()
    idx = low.find(address)
    if idx >= 0:
        start = low.rfind("\n\n", 0, idx)
        para = text[start + 1 if start >= 0 else 0 :].split("\n\n", 2)
        chunk = " ".join(para[:2]) if len(para[0].strip()) <= len(address) + 4 else para[0]
        return unfold(chunk)[:1000]
    m = _ERROR_LINE.search(text)
    return unfold(m.group(0))[:1000] if m else unfold(text[:500])
