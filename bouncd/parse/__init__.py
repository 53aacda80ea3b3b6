"""Raw message bytes -> :class:`~bouncd.records.Parsed`.

An explicit, ordered list of detectors (``DETECTORS``) is tried in turn; the first that recognises
the message wins. Every detector is a tiny object behind the :class:`Detector` protocol. Bad input
never raises out of :func:`parse_message`: it comes back as ``Kind.UNKNOWN`` with an error text.
"""

from __future__ import annotations

from bouncd.parse.base import MAX_MESSAGE_BYTES, Detector, Mail
from bouncd.parse.registry import DETECTORS
from bouncd.records import Kind, Parsed

__all__ = ["DETECTORS", "Detector", "Mail", "parse_message"]


def parse_message(raw: bytes) -> Parsed:
    """Parse one message; never raises for bad input."""
    if not raw or not raw.strip():
        return Parsed(kind=Kind.UNKNOWN, detector="none", error="empty message")
    if len(raw) > MAX_MESSAGE_BYTES:
        raw = raw[:MAX_MESSAGE_BYTES]
    try:
        mail = Mail.from_bytes(raw)
    except Exception as exc:  # edge: the email package can fail on hostile input
        return Parsed(kind=Kind.UNKNOWN, detector="none", error=f"unreadable message: {exc!r}")
    if not mail.looks_like_mail():
        return Parsed(kind=Kind.UNKNOWN, detector="none", error="not an RFC 5322 message (no headers)")
    for detector in DETECTORS:
        try:
            parsed = detector.detect(mail)
        except RecursionError:
            return Parsed(kind=Kind.UNKNOWN, detector=detector.name, error="message nested too deeply")
        except Exception as exc:  # edge: a detector bug must not lose the message
            return Parsed(
                kind=Kind.UNKNOWN, detector=detector.name, error=f"detector {detector.name} failed: {exc!r}"
            )
        if parsed is not None:
            return parsed
    return Parsed(kind=Kind.UNKNOWN, detector="none", error="no detector recognised this message")
