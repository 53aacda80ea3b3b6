"""A real ``bouncd serve`` under abuse: slowloris sessions time out, floods of connections are refused cleanly,
and a flood of forged bounces changes no DNC when signed return paths are required.

The daemon runs as a process (``tests/test_daemon.py``'s ``Daemon``) with a short ``command_timeout`` and a
small ``max_connections``, set through ``BOUNCD_SMTP_*`` environment variables.
"""

from __future__ import annotations

import concurrent.futures
import secrets
import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bouncd import verp
from bouncd.config import VerpSettings
from tests.conftest import HARD, dsn_for
from tests.postfix_instance import wait_for
from tests.test_daemon import NOW, Daemon
from tests.test_postfix_e2e import contact, nothing_pending, stats

SECRET = "abuse-test-secret"
VERP = VerpSettings(secret=SECRET, domain="rp.example.org")
TIMEOUT = 1.5  # command_timeout in seconds
MAX_CONNECTIONS = 8


@pytest.fixture
def daemon(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Daemon, str]]:
    """``bouncd serve`` on SQLite with a short command timeout, a small connection cap and signatures required."""
    db = f"sqlite:///{tmp_path / 'bouncd.sqlite3'}"
    # The timeout also runs while a DATA reply waits for its commit (aiosmtpd resets it only on input), so
    # the flood test, whose commits queue behind the processing loop on SQLite, keeps the default.
    timeout = getattr(request, "param", TIMEOUT)
    env = {
        "BOUNCD_SMTP_COMMAND_TIMEOUT": str(timeout),
        "BOUNCD_SMTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "BOUNCD_VERP_SECRET": SECRET,
        "BOUNCD_VERP_DOMAIN": VERP.domain,
        "BOUNCD_POLICY_REQUIRE_SIGNED_RETURN_PATH": "true",
        "BOUNCD_PROCESSING_POLL_SECONDS": "0.2",
    }
    d = Daemon(tmp_path, db, env=env)
    yield d, db
    if d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait(10)


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def _read_line(s: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def _closed_within(s: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Read until the server closes; (closed in time, what it said)."""
    s.settimeout(seconds)
    said = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return True, said
            said += chunk
    except TimeoutError:
        return False, said
    except ConnectionResetError:
        return True, said


def test_idle_session_after_greeting_is_closed_after_the_command_timeout(daemon: tuple[Daemon, str]) -> None:
    """A client that connects and says nothing is disconnected after command_timeout (aiosmtpd just closes)."""
    d, _db = daemon
    s = _connect(d.port)
    assert _read_line(s).startswith(b"220 ")
    started = time.monotonic()
    closed, said = _closed_within(s, TIMEOUT + 10)
    assert closed, "an idle session was never closed"
    assert time.monotonic() - started < TIMEOUT + 5
    assert said == b"" or said.startswith(b"421"), said  # never a 5xx: we are the ones giving up
    s.close()


def test_slowloris_trickling_one_command_is_closed_after_the_command_timeout(daemon: tuple[Daemon, str]) -> None:
    """A command sent one byte at a time, never finished, does not keep the session open past the timeout."""
    d, _db = daemon
    s = _connect(d.port)
    assert _read_line(s).startswith(b"220 ")
    started = time.monotonic()
    closed = False
    s.settimeout(0.05)
    for byte in b"EHLO slow.example.org and more and more and more and more and more and more":
        try:
            s.send(bytes([byte]))
            if s.recv(4096) == b"":
                closed = True
                break
        except TimeoutError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.2)
        if time.monotonic() - started > TIMEOUT + 8:
            break
    assert closed, "a trickled command kept the session open"
    assert time.monotonic() - started < TIMEOUT + 8
    s.close()


def test_too_many_connections_are_refused_with_421_and_the_daemon_keeps_serving(daemon: tuple[Daemon, str]) -> None:
    """With MAX_CONNECTIONS idle sessions open, 40 more clients each get 421 at once; afterwards mail gets 250."""
    d, db = daemon
    held = [_connect(d.port) for _ in range(MAX_CONNECTIONS)]
    for s in held:
        assert _read_line(s).startswith(b"220 ")

    def knock(_: int) -> bytes:
        s = _connect(d.port)
        try:
            line = _read_line(s)
            closed, _rest = _closed_within(s, 5)
            return line if closed else b"still open: " + line
        finally:
            s.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(knock, range(40)))
    assert all(r.startswith(b"421 4.7.0") for r in replies), {r[:60] for r in replies}
    for s in held:
        s.close()
    assert d.proc.poll() is None
    # The held sessions are gone (closed by us or timed out): a real bounce is accepted and processed.
    assert wait_for(lambda: _try_bounce(d, "real@example.net"), 15)
    assert wait_for(lambda: nothing_pending(db) and (contact(db, "real@example.net") or {}).get("dnc") is True, 20)


def _try_bounce(d: Daemon, address: str) -> bool:
    try:
        with d.client() as c:
            c.sendmail("", [verp.encode(VERP, address)], dsn_for(HARD, address, NOW))
        return True
    except (smtplib.SMTPException, OSError):
        return False


@pytest.mark.parametrize("daemon", [60.0], indirect=True)
def test_a_flood_of_forged_bounces_changes_no_dnc_when_signatures_are_required(daemon: tuple[Daemon, str]) -> None:
    """300 hard bounces for 300 addresses: unsigned, forged-signature and plain return paths; none becomes DNC."""
    d, db = daemon
    victims = [f"victim{i}@example.net" for i in range(300)]

    def rcpt(i: int, address: str) -> str:
        local, _, domain = address.partition("@")
        kind = i % 3
        if kind == 0:  # classic unsigned VERP
            return f"bounces+{local}={domain}@{VERP.domain}"
        if kind == 1:  # a signature the forger made up
            return f"bounces+{local}={domain}={secrets.token_hex(8)[:16].translate(str.maketrans('0189', 'abcd'))}@{VERP.domain}"
        # a signature valid for someone else
        return verp.encode(VERP, "someone.else@example.net")

    def send(chunk: list[int]) -> int:
        with d.client() as c:
            for i in chunk:
                c.sendmail("", [rcpt(i, victims[i])], dsn_for(HARD, victims[i], NOW))
        return len(chunk)

    chunks = [list(range(k, 300, 6)) for k in range(6)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        assert sum(pool.map(send, chunks)) == 300
    assert wait_for(lambda: nothing_pending(db), 120), stats(db)
    s = stats(db)
    assert s["messages"] == 300 and s["messages_by_state"] == {"processed": 300}, s
    assert s["dnc_contacts"] == 0, s
    recorded = contact(db, victims[0])
    assert recorded is not None and recorded["dnc"] is False and recorded["bounces"][0]["hard"] is True
    # The pipeline does raise DNC for a genuine signed bounce, so the flood's zero is not an accident.
    assert _try_bounce(d, "genuine@example.net")
    assert wait_for(lambda: (contact(db, "genuine@example.net") or {}).get("dnc") is True, 20)
    assert stats(db)["dnc_contacts"] == 1
