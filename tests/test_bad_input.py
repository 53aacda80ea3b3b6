"""Bad input never raises out of the analyzer: it comes back as kind=unknown with an error text."""

from __future__ import annotations

import pytest

from bouncd.analyze import analyze
from bouncd.records import Kind

HOSTILE = {
    "empty": b"",
    "whitespace": b"   \r\n\r\n  ",
    "binary junk": bytes(range(256)) * 40,
    "nul bytes in headers": b"From: a\x00b@example.com\r\nSubject: \x00\x00\r\n\r\nbody\x00",
    "no headers": b"\r\n\r\njust a body with no headers at all",
    "truncated multipart": (
        b"From: MAILER-DAEMON@example.com\r\nContent-Type: multipart/report; report-type=delivery-status;"
        b' boundary="XX"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nsorry\r\n--XX\r\nContent-Type: mess'
    ),
    "undecodable charset": (
        b"From: x@example.com\r\nSubject: =?x-unknown?B?////?=\r\nContent-Type: text/plain; charset=no-such-cs\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
    ),
    "deep nesting": b"From: x@example.com\r\n" + b"".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode() for i in range(300)
    ),
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_input_is_reported_not_raised(raw: bytes) -> None:
    """Hostile input yields a report, never an exception, and never a hard verdict."""
    report = analyze(raw)
    assert not any(r.hard for r in report.results)
    if report.kind == Kind.UNKNOWN:
        assert report.error
