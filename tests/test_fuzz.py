"""Property-based fuzzing: hostile MIME and mutated real bounces never crash the parser or earn a 5xx.

Hypothesis builds messages with wrong or missing boundaries, deep nesting, broken transfer encodings and
charsets, NULs, thousands of headers and giant lines, and mutates every ``fixtures/dsn/*.eml``. The
properties: ``analyze()`` returns a report (never raises) whose recipients are addresses; the SMTP
listener answers 250 (stored) to every such message that is within the size limits, and processing then
leaves each one processed or parked as failed, never pending; memory stays bounded. A longer seeded run
is ``bench/fuzz_run.py``.
"""

from __future__ import annotations

import gc
import smtplib
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from bouncd.analyze import analyze
from bouncd.db import upgrade
from bouncd.db.models import Message
from bouncd.db.session import make_engine, transaction
from bouncd.ingest import process_pending
from bouncd.records import Kind
from tests.conftest import HARD, dsn_for
from tests.test_smtp import Running, _settings

FIXTURES = sorted((Path(__file__).resolve().parent.parent / "fixtures" / "dsn").glob("*.eml"))
NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- strategies -----------------------------------------------------------------------------------

_header_names = st.sampled_from(
    [b"From", b"To", b"Subject", b"Content-Type", b"Content-Transfer-Encoding", b"MIME-Version", b"Received",
     b"Final-Recipient", b"Original-Recipient", b"Action", b"Status", b"Diagnostic-Code", b"X-Failed-Recipients",
     b"Auto-Submitted", b"Feedback-Type", b"Return-Path", b"X-\x00Weird", b"\xff\xfe", b""]
)  # fmt: skip
_header_values = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [b"multipart/report; report-type=delivery-status; boundary=\"B\"", b"multipart/mixed; boundary=",
         b"message/delivery-status", b"text/rfc822-headers", b"message/rfc822", b"base64", b"quoted-printable",
         b"x-uuencode", b"text/plain; charset=\"x-no-such-charset\"", b"text/plain; charset=utf-7",
         b"=?utf-8?B?////?=", b"=?iso-2022-jp?Q?=1B$B=FF?=", b"rfc822; <>", b"rfc822;", b"failed", b"delayed",
         b"5.1.1", b"9.9.9", b"4.", b"smtp; 550", b"<@@>", b"\"a\"@\x00", b"a@" + b"b." * 300 + b"c"]
    ),
)  # fmt: skip
_header = st.builds(lambda n, v, sep: n + sep + v, _header_names, _header_values, st.sampled_from([b": ", b":", b" : ", b""]))
_eol = st.sampled_from([b"\r\n", b"\n", b"\r", b"\n\r"])


@st.composite
def hostile_mime(draw: st.DrawFn, max_line: int = 300_000) -> bytes:
    """A message-shaped byte string built to hurt a MIME parser."""
    eol = draw(_eol)
    headers = draw(st.lists(_header, max_size=40))
    if draw(st.booleans()):
        headers += [b"X-Filler-%d: %s" % (i, b"v" * (i % 50)) for i in range(draw(st.integers(0, 3000)))]
    boundary = draw(st.sampled_from([b"B", b"", b"B B", b"\x00", b"-" * 80, b"==?=", b"\xff"]))
    headers.append(b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"" + boundary + b"\"")
    body: list[bytes] = []
    depth = draw(st.integers(0, 60))
    for i in range(depth):  # nested multiparts, closed or not
        body.append(b"--" + boundary + eol + b"Content-Type: multipart/mixed; boundary=\"n%d\"" % i + eol + eol)
        boundary = b"n%d" % i
    for _ in range(draw(st.integers(0, 4))):
        which = draw(st.sampled_from([boundary, b"WRONG", boundary + b"--", b""]))
        part_headers = draw(st.lists(_header, max_size=6))
        body.append(b"--" + which + eol + eol.join(part_headers) + eol + eol)
        body.append(draw(st.sampled_from([
            b"Final-Recipient: rfc822; user@example.org" + eol + b"Action: failed" + eol + b"Status: 5.1.1" + eol,
            b"Reporting-MTA: dns; x" + eol + eol + b"Final-Recipient: rfc822;" + eol + b"Status: 5.1.1",
            b"!!!! not base64 ====" + eol, b"=ZZ=\x00=" + eol, b"\x00" * 100, b"",
        ])))  # fmt: skip
        body.append(draw(st.binary(max_size=300)))
    if draw(st.booleans()):
        body.append(b"x" * draw(st.integers(1000, max_line)))  # one giant line
    if draw(st.booleans()):
        body.append(b"--" + boundary + b"--")
    return eol.join(headers) + eol + eol + eol.join(body)


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    """A real bounce from fixtures/dsn with a few random cuts, flips, insertions and refolds."""
    raw = bytearray(FIXTURES[draw(st.integers(0, len(FIXTURES) - 1))].read_bytes())
    for _ in range(draw(st.integers(1, 6))):
        if not raw:
            break
        op = draw(st.integers(0, 6))
        at = draw(st.integers(0, len(raw) - 1))
        if op == 0:
            del raw[at:]
        elif op == 1:
            raw[at] = draw(st.integers(0, 255))
        elif op == 2:
            raw[at:at] = draw(st.sampled_from([b"\x00", b"\r", b"--", b"=?utf-8?q?", b"\n\n", b"boundary=\"\"", b"\xff\xfe"]))
        elif op == 3:
            end = draw(st.integers(at, len(raw)))
            del raw[at:end]
        elif op == 4:
            end = draw(st.integers(at, min(len(raw), at + 2000)))
            raw[at:at] = raw[at:end] * draw(st.integers(2, 20))
        elif op == 5:
            raw = bytearray(bytes(raw).replace(b"\n", b"\r\n" if draw(st.booleans()) else b"\n ", draw(st.integers(1, 50))))
        else:
            raw = bytearray(bytes(raw).replace(b"boundary=", b"boundary=X", 1))
    return bytes(raw)


def _check_report(raw: bytes) -> None:
    report = analyze(raw)
    assert isinstance(report.kind, Kind)
    for result in report.results:
        assert result.recipient is None or "@" in result.recipient, result


# --- the parser never raises ----------------------------------------------------------------------


@FUZZ
@given(hostile_mime())
def test_hostile_mime_never_makes_the_analyzer_raise(raw: bytes) -> None:
    """Wrong boundaries, nesting, bad encodings, NULs, 1000s of headers and giant lines: a report, never an exception."""
    _check_report(raw)


@FUZZ
@given(mutated_fixture())
def test_mutated_real_bounces_never_make_the_analyzer_raise(raw: bytes) -> None:
    """Every fixture, cut, flipped, padded and refolded: a report, never an exception."""
    _check_report(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_never_make_the_analyzer_raise(raw: bytes) -> None:
    """Any bytes at all come back as a report."""
    _check_report(raw)


# --- the daemon never answers 5xx for our own failure ----------------------------------------------


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One SMTP listener on SQLite for the whole module (hypothesis calls the test many times)."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'bouncd.sqlite3'}")
    upgrade(engine)
    running = Running(_settings(), engine)
    yield running
    running.stop()
    engine.dispose()


def _pending(engine: Engine) -> int:
    with transaction(engine) as s:
        return int(s.execute(select(func.count()).select_from(Message).where(Message.state == "pending")).scalar_one())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                               HealthCheck.function_scoped_fixture])  # fmt: skip
@given(raw=st.one_of(hostile_mime(max_line=200_000), mutated_fixture()))
def test_hostile_mail_over_smtp_is_stored_with_250_and_processed_without_crashing(listener: Running, raw: bytes) -> None:
    """Within the size limits every message gets 250 (stored); processing leaves none pending and raises nothing."""
    with smtplib.SMTP(listener.host, listener.port, timeout=30) as c:
        c.ehlo("fuzz.example")
        code, reply = c.mail("")
        assert code == 250
        assert c.rcpt("b@bounces.example.org")[0] == 250
        code, reply = c.data(raw)
    assert code == 250, f"{code} {reply!r}"
    process_pending(listener.engine, listener.settings, limit=1000)
    assert _pending(listener.engine) == 0


# --- memory stays bounded --------------------------------------------------------------------------


def test_memory_stays_bounded_on_huge_hostile_input() -> None:
    """A 5 MB line, 5,000 headers and 200-deep nesting each parse within a fixed multiple of their size."""
    inputs = [
        b"Subject: x\n\n" + b"A" * 5_000_000,
        b"".join(b"X-H%d: %s\n" % (i, b"v" * 200) for i in range(5000)) + b"\nbody\n",
        b"Content-Type: multipart/mixed; boundary=b0\n\n"
        + b"".join(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i, i + 1) for i in range(200)),
    ]
    for raw in inputs:
        gc.collect()
        tracemalloc.start()
        try:
            analyze(raw)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 15 * len(raw) + 10_000_000, f"peak {peak} bytes for a {len(raw)}-byte input"


def test_memory_does_not_grow_over_many_hostile_messages() -> None:
    """Analyzing the same hostile batch again and again keeps the same memory: nothing accumulates."""
    batch = [p.read_bytes()[: 1 + i * 37 % 4000] + b"\x00--B\n" for i, p in enumerate(FIXTURES)]
    batch.append(dsn_for(HARD, "x@example.net", NOW).replace(b"BOUNDARY", b"B\x00"))

    def once() -> None:
        for raw in batch:
            analyze(raw)

    once()  # warm caches (compiled regexes, codec lookups) before measuring
    gc.collect()
    tracemalloc.start()
    try:
        once()
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            once()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 2_000_000, f"memory grew by {grown} bytes over 5 rounds"


class _Broken:
    """A store that fails the way our own bugs would: any exception type, any message."""

    def __init__(self) -> None:
        self.error: BaseException = RuntimeError("boom")

    def __call__(self, items: object) -> list[object]:
        raise self.error


@pytest.fixture(scope="module")
def broken_listener() -> Iterator[tuple[Running, _Broken]]:
    """A listener whose store always raises (swapped in through Listener's store_batch)."""
    import asyncio
    import threading

    from bouncd.daemon import Listener, bind_socket

    broken = _Broken()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    listener = Listener(_settings(), broken)
    host, port = asyncio.run_coroutine_threadsafe(listener.start(bind_socket("127.0.0.1", 0)), loop).result(30)
    running = Running.__new__(Running)  # only host/port are used by the test
    running.host, running.port = host, port
    yield running, broken
    asyncio.run_coroutine_threadsafe(listener.stop(grace=2), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    error=st.sampled_from([ValueError("x"), KeyError("k"), TypeError("t"), RuntimeError("r"), OSError(28, "No space left"),
                           UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), ZeroDivisionError(), AssertionError("a")]),
    raw=st.one_of(hostile_mime(max_line=50_000), mutated_fixture()),
)  # fmt: skip
def test_our_own_failure_while_storing_is_never_a_5xx(
    broken_listener: tuple[Running, _Broken], error: Exception, raw: bytes
) -> None:
    """Whatever our store raises, the sender gets 451 4.3.0 (retry later), never a permanent 5xx."""
    running, broken = broken_listener
    broken.error = error
    with smtplib.SMTP(running.host, running.port, timeout=30) as c:
        c.ehlo("fuzz.example")
        c.mail("")
        assert c.rcpt("b@bounces.example.org")[0] == 250
        code, reply = c.data(raw)
    assert code == 451 and reply.startswith(b"4.3.0"), (code, reply)
