"""Damaged bounces never make a detector fail: every family's reader copes with cut, garbled and refolded input."""

from __future__ import annotations

import random

import pytest

from bouncd.parse import parse_message
from tests.test_parse_families import DMA, DSN_IN_TEXT, EXIM, OPENSMTPD, POSTFIX_TEXT, QMAIL, SENDMAIL_TEXT, V5_TRANSCRIPT

SAMPLES = [DMA, QMAIL, EXIM, SENDMAIL_TEXT, V5_TRANSCRIPT, POSTFIX_TEXT, OPENSMTPD, DSN_IN_TEXT]


def _mutations(raw: bytes, rng: random.Random, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        b = bytearray(raw)
        op = rng.randrange(5)
        if op == 0:
            b = b[: rng.randrange(len(b))]
        elif op == 1:
            for _ in range(rng.randrange(1, 20)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 2:
            a, z = sorted((rng.randrange(len(b)), rng.randrange(len(b))))
            b = b[:a] + b[z:]
        elif op == 3:
            b = bytearray(bytes(b).replace(b"\n", b"\n ", rng.randrange(1, 40)))
        else:
            b = bytearray(bytes(b).replace(b"From:", b"From: \xff\xfe=?utf-8?B?####?=", 1))
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("index", range(len(SAMPLES)))
def test_mutated_family_bounces_never_break_a_detector(index: int) -> None:
    """Truncation, byte flips, cut-outs, refolding and broken encoded words yield a result or a clean 'unknown'."""
    rng = random.Random(index)
    for raw in _mutations(SAMPLES[index], rng, 150):
        parsed = parse_message(raw)
        assert parsed.error is None or "failed" not in parsed.error, parsed.error
        for f in parsed.failures:
            assert f.recipient is None or "@" in f.recipient


@pytest.mark.parametrize(
    "raw",
    [
        b"From: MAILER-DAEMON\nSubject: failure notice\n\nHi. This is the qmail-send program at x.\n<",
        b"From: a@b.example\nX-Failed-Recipients: ,,,\n\nThis message was created automatically by mail delivery software.\n",
        b"From: no-reply@sns.amazonaws.com\n\n{\"notificationType\":\"Bounce\",\"bounce\":{\"bouncedRecipients\":[1,null,{}]}}",
        b"From: no-reply@sns.amazonaws.com\n\n{\"notificationType\":",
        b"Subject: x\nContent-Type: text/plain; charset=iso-2022-jp\n\n\x1b$B\xff\xfe\n"
        b"   ----- Transcript of session follows -----\n",
        b"From: x@y.example\n\n   ----- The following addresses had permanent fatal errors -----\n" + b"<a@b.example>\n" * 5000,
    ],
    ids=["qmail-cut", "empty-failed-recipients", "ses-odd-json", "ses-cut-json", "bad-iso-2022-jp", "huge-error-list"],
)
def test_hostile_family_shaped_input_is_handled(raw: bytes) -> None:
    """Input shaped like a family's report but broken inside comes back without an exception or a detector failure."""
    parsed = parse_message(raw)
    assert parsed.error is None or "failed" not in parsed.error, parsed.error
