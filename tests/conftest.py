"""Shared fixtures: databases on both backends (a real PostgreSQL started here), and mail builders.

PostgreSQL: the server binaries in ``/usr/lib/postgresql/*/bin`` are started once per test session in a
temp directory on a free loopback port. PostgreSQL refuses to run as root, so as root the server runs as
the ``postgres`` user (``runuser``). Without server binaries the PostgreSQL tests skip with a message,
unless ``BOUNCD_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from itertools import count
from pathlib import Path

import pytest
import structlog
from sqlalchemy import Engine, text

from bouncd.config import Settings
from bouncd.db import upgrade
from bouncd.db.session import make_engine

PG_USER = os.environ.get("BOUNCD_TEST_PG_USER", "postgres")
REQUIRE_PG = os.environ.get("BOUNCD_REQUIRE_POSTGRES", "") not in ("", "0")
_db_numbers = count(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _no_postgres(why: str) -> None:
    if REQUIRE_PG:
        pytest.fail(f"PostgreSQL required (BOUNCD_REQUIRE_POSTGRES) but {why}")
    pytest.skip(f"PostgreSQL tests skipped: {why}")


@pytest.fixture(autouse=True)
def every_log_level() -> Iterator[None]:
    """Each test starts with every log level let through, whatever an earlier in-process CLI run configured
    (``bouncd.logs`` filters levels in the bound logger, for the CLI at warning), and the configuration is
    put back after it: structlog's ``capture_logs`` swaps the processors, not that level filter."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server for this test session; yields the URL of its ``postgres`` database."""
    env_url = os.environ.get("BOUNCD_TEST_PG_URL")
    if env_url:  # an existing server, e.g. a CI service container
        yield env_url
        return
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        _no_postgres("no server binaries in /usr/lib/postgresql/*/bin")
    bindir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="bouncd-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(PG_USER)
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            _no_postgres(f"running as root and there is no {PG_USER!r} user to run the server as")
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", PG_USER, "--"]
    data, port = base / "data", _free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, cwd=base)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "server.log"), "-w", "start")
    except subprocess.CalledProcessError as exc:
        log = (base / "server.log").read_text(errors="replace") if (base / "server.log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')} {log}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def fresh_postgres_url(server_url: str) -> str:
    """Create an empty database on the test server and return its URL."""
    name = f"bouncd_t{os.getpid()}_{next(_db_numbers)}"
    admin = make_engine(server_url)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL, once for SQLite and once for a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'bouncd.sqlite3'}"
    return fresh_postgres_url(request.getfixturevalue("postgres_server"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a migrated, empty database (both backends)."""
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def settings() -> Settings:
    """Default settings (policy defaults: 5 soft bounces on 5 days within 30 days)."""
    return Settings()


# --- mail builders: tests write the messages they need ---------------------------------------------


def _tag(*parts: str) -> str:
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def _crlf(s: str) -> bytes:
    return s.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def make_dsn(
    rcpt: str,
    status: str,
    diagnostic: str,
    arrival: datetime,
    *,
    action: str = "failed",
    original_id: str = "<newsletter-1@example.org>",
) -> bytes:
    """An RFC 3464 DSN for one recipient, with ``Arrival-Date`` and ``Date`` set to ``arrival``."""
    when = format_datetime(arrival.astimezone(UTC))
    return _crlf(f"""From: MAILER-DAEMON@mx.example.net
To: bounces@example.org
Subject: Undelivered Mail Returned to Sender
Date: {when}
Message-ID: <dsn-{_tag(rcpt, status, diagnostic, when, action)}@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain

This is the mail system at host mx.example.net. Your message could not be delivered.

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: {when}

Final-Recipient: rfc822; {rcpt}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.remote.example
Diagnostic-Code: smtp; {diagnostic}

--BOUNDARY
Content-Type: text/rfc822-headers

Message-ID: {original_id}
From: news@example.org
To: {rcpt}
Subject: Our newsletter

--BOUNDARY--
""")


def make_arf(rcpt: str, arrival: datetime, *, original_id: str = "<newsletter-1@example.org>") -> bytes:
    """An RFC 5965 abuse complaint about a message sent to ``rcpt``."""
    when = format_datetime(arrival.astimezone(UTC))
    return _crlf(f"""From: feedback@fbl.example.net
To: abuse@example.org
Subject: Abuse report
Date: {when}
Message-ID: <arf-{_tag(rcpt, when)}@fbl.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain

This is an email abuse report.

--ARF
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: {rcpt}
Arrival-Date: {when}

--ARF
Content-Type: text/rfc822-headers

Message-ID: {original_id}
From: news@example.org
To: {rcpt}
Subject: Our newsletter

--ARF--
""")


HARD = ("5.1.1", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table")
MAILBOX_FULL = ("4.2.2", "452 4.2.2 <{rcpt}>: Mailbox full, over quota")
SPAM_BLOCK = ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org")


def dsn_for(kind: tuple[str, str], rcpt: str, arrival: datetime, **kw: str) -> bytes:
    """A DSN of one of the canned kinds above."""
    status, diag = kind
    return make_dsn(rcpt, status, diag.format(rcpt=rcpt), arrival, **kw)
