"""Raw bytes -> classified :class:`~bouncd.records.Report`: the parser and classifier in one call."""

from __future__ import annotations

from bouncd.address import normalize_address
from bouncd.classify import classify_parsed
from bouncd.parse import parse_message
from bouncd.records import Report


def analyze(raw: bytes, envelope_recipient: str | None = None) -> Report:
    """Parse and classify one message; never raises for bad input."""
    return classify_parsed(parse_message(raw), normalize_address(envelope_recipient))
