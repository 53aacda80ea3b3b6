"""A real Postfix generates the bounces and delivers them to bouncd over SMTP, LMTP and pipe(8).

One Postfix instance of our own (``tests/postfix_instance.py``: temp config and queue, loopback only,
queue timers in seconds) sends campaign mail whose envelope sender is a signed bouncd return path to
(a) a local user that does not exist (local(8): 5.1.1), (b) a domain that does not resolve (smtp(8):
5.4.4), (c) a mailbox that answers ``452 4.2.2`` (deferred: a delay notice after ``delay_warning_time``,
then the failure after ``maximal_queue_lifetime``). A remote MX also hands Postfix a DSN for a signed
return path, accepted through ``relay_domains``. Postfix writes the DSNs itself and routes them by the
return path's domain, as the README's "Connect your mail server" section says: ``smtp.bounces.test`` to
``bouncd serve``, ``lmtp.bounces.test`` to ``bouncd serve --lmtp``, ``pipe.bounces.test`` through a
pipe(8) service to ``bouncd ingest -`` (the installed wheel, run as ``nobody``).

The retry drill: the database goes away, bouncd answers 451 (serve) or exits 75 (pipe), Postfix keeps
the bounces queued; the database comes back, ``postqueue -f``, every bounce is recorded exactly once.

Skips when Postfix is not installed or we are not root; ``.ci/run`` installs it, runs as root and sets
``BOUNCD_REQUIRE_POSTFIX=1`` so that there a skip is a failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from bouncd.cli import main as cli_main
from bouncd.client import verp_address
from bouncd.config import VerpSettings
from bouncd.db import upgrade
from bouncd.db.session import make_engine
from tests.conftest import HARD, dsn_for
from tests.postfix_instance import PostfixInstance, free_port, wait_for, why_no_postfix
from tests.test_daemon import Daemon
from tests.wheel_venv import InstalledWheel, installed_wheel

REQUIRE_POSTFIX = os.environ.get("BOUNCD_REQUIRE_POSTFIX", "") not in ("", "0")  # set by .ci/run
_why = why_no_postfix()


def _unavailable(why: str) -> None:
    if REQUIRE_POSTFIX:
        pytest.fail(f"Postfix end-to-end tests required (BOUNCD_REQUIRE_POSTFIX) but {why}")
    pytest.skip(f"Postfix end-to-end tests skipped: {why}")


@pytest.fixture(autouse=True)
def _postfix_available() -> None:
    """Skip (or, in CI, fail) when no Postfix can run here."""
    if _why is not None:
        _unavailable(_why)

SECRET = "e2e-test-secret-0123456789"
PIPE_USER = "nobody"
ROUTES = ("smtp", "lmtp", "pipe")
SETTLE_SECONDS = 120.0  # upper bound for Postfix to bounce, warn, expire and deliver everything


def signed(route: str, contact: str) -> str:
    """The signed return path for ``contact`` on the bounce domain of ``route``, as a sending app gets it."""
    return verp_address(contact, VerpSettings(secret=SECRET, domain=f"{route}.bounces.test"))


def bouncd_env(route: str) -> dict[str, str]:
    """Settings for the bouncd of one route (environment overrides, as an operator may use them)."""
    return {
        "BOUNCD_VERP_SECRET": SECRET,
        "BOUNCD_VERP_DOMAIN": f"{route}.bounces.test",
        "BOUNCD_POLICY_REQUIRE_SIGNED_RETURN_PATH": "true",
        "BOUNCD_PROCESSING_POLL_SECONDS": "0.2",
    }


class DeferringMX:
    """The remote MX of ``defer.test``: every RCPT is answered ``452 4.2.2`` (mailbox full, try later)."""

    def __init__(self) -> None:
        self.rcpts: list[str] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        self.rcpts.append(address)
        return f"452 4.2.2 <{address}>: Mailbox full, quota exceeded, try again later"


def cli_json(*argv: str) -> Any:
    """Run a bouncd CLI read command in-process with ``--json``; the parsed output (None on exit 1)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli_main([*argv, "--json"])
    return json.loads(out.getvalue()) if code == 0 else None


def contact(db: str, address: str) -> dict[str, Any] | None:
    """``bouncd contact show ADDRESS --json``, or None for an unknown contact."""
    data = cli_json("contact", "show", address, "--db", db, "--bounces", "50")
    return data if isinstance(data, dict) else None


def stats(db: str) -> dict[str, Any]:
    """``bouncd stats --json``."""
    data = cli_json("stats", "--db", db)
    assert isinstance(data, dict)
    return data


def nothing_pending(db: str) -> bool:
    """True when every stored message has been processed (or parked as failed)."""
    return stats(db)["backlog"]["count"] == 0


@dataclass
class PipeStore:
    """The pipe route's SQLite database, in a directory the pipe(8) user owns, and its config file."""

    base: Path
    db: str
    config: Path


def make_pipe_store(route: str) -> PipeStore:
    """A migrated SQLite database and a TOML config, owned by the pipe(8) user."""
    base = Path(tempfile.mkdtemp(prefix="bouncd-pipe-"))
    db = f"sqlite:///{base / 'bouncd.sqlite3'}"
    engine = make_engine(db)
    upgrade(engine)
    engine.dispose()
    config = base / "bouncd.toml"
    env = bouncd_env(route)
    config.write_text(
        f'[database]\nurl = "{db}"\n\n[verp]\nsecret = "{SECRET}"\ndomain = "{env["BOUNCD_VERP_DOMAIN"]}"\n\n'
        "[policy]\nrequire_signed_return_path = true\n"
    )
    user = pwd.getpwnam(PIPE_USER)
    for path in [base, *base.iterdir()]:
        os.chown(path, user.pw_uid, user.pw_gid)
    return PipeStore(base, db, config)


def pipe_argv(wheel: InstalledWheel, config: Path) -> str:
    """The pipe(8) command line: Postfix passes the envelope in macros, bouncd reads SENDER/RECIPIENT."""
    return f"/usr/bin/env SENDER=${{sender}} RECIPIENT=${{recipient}} {wheel.bouncd} ingest --config {config} -"


@dataclass
class World:
    """Postfix, the deferring MX, and one bouncd (with its database) per route."""

    postfix: PostfixInstance
    mx: DeferringMX
    dbs: dict[str, str]
    daemons: dict[str, Daemon]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Start everything for one test; stop and remove it all afterwards."""
    wheel = installed_wheel()
    if isinstance(wheel, str) or not wheel.system_python:
        _unavailable(f"the pipe(8) route needs the wheel installed with a Python any user can run: {wheel}")
    cleanups: list[Callable[[], object]] = []
    try:
        mx = DeferringMX()
        mx_port = free_port()
        controller = Controller(mx, hostname="127.0.0.1", port=mx_port)
        controller.start()
        cleanups.append(controller.stop)
        dbs: dict[str, str] = {}
        daemons: dict[str, Daemon] = {}
        for route in ("smtp", "lmtp"):
            dbs[route] = f"sqlite:///{tmp_path / route / 'bouncd.sqlite3'}"
            (tmp_path / route).mkdir()
            extra = ("--lmtp",) if route == "lmtp" else ()
            daemons[route] = Daemon(tmp_path / route, dbs[route], *extra, env=bouncd_env(route))
            cleanups.append(daemons[route].proc.kill)
        pipe = make_pipe_store("pipe")
        cleanups.append(lambda: shutil.rmtree(pipe.base, ignore_errors=True))
        dbs["pipe"] = pipe.db
        transport = {
            "smtp.bounces.test": f"smtp:[127.0.0.1]:{daemons['smtp'].port}",
            "lmtp.bounces.test": f"lmtp:inet:127.0.0.1:{daemons['lmtp'].port}",
            "pipe.bounces.test": "bouncd:",
            "defer.test": f"smtp:[127.0.0.1]:{mx_port}",
            **{f"nx-{route}.invalid": "smtp:" for route in ROUTES},  # smtp(8) asks DNS: NXDOMAIN
        }
        postfix = PostfixInstance(
            transport,
            # relay_domains: remote MXs hand Postfix their bounces for our bounce domains (README).
            settings={"maximal_queue_lifetime": "8s", "bouncd_destination_recipient_limit": "1",
                      "relay_domains": " ".join(f"{r}.bounces.test" for r in ROUTES)},
            pipe_argv=pipe_argv(wheel, pipe.config),
            pipe_user=PIPE_USER,
        )
        cleanups.append(postfix.stop)
        postfix.start()
        yield World(postfix, mx, dbs, daemons)
    finally:
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()


def settle(world: World, *, also: Callable[[], bool] = lambda: True) -> None:
    """Wait until Postfix's queue is empty and every bouncd has processed what it stored."""
    ok = wait_for(
        lambda: not world.postfix.queued()
        and all(nothing_pending(world.dbs[r]) for r in ("smtp", "lmtp"))
        and also(),
        SETTLE_SECONDS,
        interval=0.5,
    )
    assert ok, f"Postfix did not settle: queue {world.postfix.queued()}\n{world.postfix.maillog()[-6000:]}"


def test_postfix_bounces_reach_bouncd_over_smtp_lmtp_and_pipe_with_the_right_verdicts(world: World) -> None:
    """Dead local user and unresolvable domain become DNC with reason and trail; a full mailbox never does."""
    for route in ROUTES:
        world.postfix.send(signed(route, f"gone-{route}@mx.bouncd.test"), f"gone-{route}@mx.bouncd.test", f"a {route}")
        world.postfix.send(signed(route, f"someone@nx-{route}.invalid"), f"someone@nx-{route}.invalid", f"b {route}")
        world.postfix.send(signed(route, f"full-{route}@defer.test"), f"full-{route}@defer.test", f"c {route}")
    # An unsigned return path (what a forger can write): Postfix bounces it too, bouncd must not act on it.
    world.postfix.send("bounces+unsigned-smtp=mx.bouncd.test@smtp.bounces.test", "unsigned-smtp@mx.bouncd.test", "d smtp")
    # A remote MX returns a bounce to the signed return path; Postfix relays it to bouncd (relay_domains).
    for route in ROUTES:
        remote = f"remote-{route}@example.net"
        code, reply = world.postfix.receive_from_internet("", signed(route, remote), dsn_for(HARD, remote, datetime.now(UTC)))
        assert code == 250, reply
    # ... but Postfix relays nothing else for the Internet (defer_unauth_destination: 454, never accepted).
    code, reply = world.postfix.receive_from_internet("", "someone@elsewhere.example", b"Subject: x\r\n\r\nx\r\n")
    assert code in (454, 554) and b"Relay access denied" in reply, (code, reply)
    settle(world)
    log = world.postfix.maillog()
    assert "sender delay notification" in log, "no delay warning was generated"
    assert len(world.mx.rcpts) >= 6, "the deferring MX was not retried"

    for route in ROUTES:
        db = world.dbs[route]
        gone, nx, full = f"gone-{route}@mx.bouncd.test", f"someone@nx-{route}.invalid", f"full-{route}@defer.test"

        remote = f"remote-{route}@example.net"
        dead = ((gone, "userunknown", "5.1.1"), (nx, "hostunknown", "5.4.4"), (remote, "userunknown", "5.1.1"))
        for address, reason, status in dead:
            c = contact(db, address)
            assert c is not None, f"{route}: no contact {address}"
            assert c["dnc"] is True, f"{route}: {address} not DNC: {c}"
            assert c["dnc_source"] == "hard_bounce"
            assert [(t["action"], t["source"], t["policy_rule"], t["status"], t["reason"]) for t in c["trail"]] == [
                ("on", "hard_bounce", "policy.hard_bounce", status, reason)
            ], f"{route}: {address}"
            assert [(b["action"], b["hard"], b["reason"], b["signed"]) for b in c["bounces"]] == [("failed", True, reason, True)]

        c = contact(db, full)
        assert c is not None and c["dnc"] is False and c["trail"] == [], f"{route}: {c}"
        delayed = [b for b in c["bounces"] if b["action"] == "delayed"]
        failed = [b for b in c["bounces"] if b["action"] == "failed"]
        assert delayed and all(not b["counted"] and b["policy_rule"] == "policy.delayed" for b in delayed), f"{route}: {c}"
        assert [(b["hard"], b["reason"], b["status"], b["counted"]) for b in failed] == [(False, "mailboxfull", "4.2.2", True)]
        assert all(b["signed"] for b in c["bounces"])

        # Nothing else changed: exactly these two DNC contacts, every message processed, none parked.
        s = stats(db)
        assert s["dnc_contacts"] == 3, f"{route}: {s}"
        assert set(s["messages_by_state"]) == {"processed"}, f"{route}: {s}"
        dnc_list = cli_json("dnc", "list", "--db", db)
        assert sorted(d["address"] for d in dnc_list) == sorted([gone, nx, remote])

    unsigned = contact(world.dbs["smtp"], "unsigned-smtp@mx.bouncd.test")
    assert unsigned is None or (unsigned["dnc"] is False and unsigned["trail"] == []), unsigned
    # Each route received only its own bounces (the return path's domain picked the route).
    assert stats(world.dbs["smtp"])["messages_by_state"]["processed"] == 6
    assert stats(world.dbs["lmtp"])["messages_by_state"]["processed"] == 5
    assert stats(world.dbs["pipe"])["messages_by_state"]["processed"] == 5


@pytest.mark.postgres
def test_retry_drill_database_down_451_postfix_keeps_the_bounces_then_each_is_recorded_once(
    postgres_server: str, tmp_path: Path
) -> None:
    """Database unavailable: serve answers 451 and the pipe exits 75, Postfix queues; back + flush: recorded once."""
    from tests.conftest import fresh_postgres_url

    wheel = installed_wheel()
    if isinstance(wheel, str) or not wheel.system_python:
        _unavailable(f"the pipe(8) route needs the wheel installed with a Python any user can run: {wheel}")
    db = fresh_postgres_url(postgres_server)
    dbname = db.rsplit("/", 1)[1]
    engine = make_engine(db)
    upgrade(engine)
    admin = make_engine(postgres_server)

    def database(allow: bool) -> None:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS {str(allow).lower()}'))
            if not allow:  # and drop every session already open (bouncd's pool)
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": dbname})

    config = tmp_path / "pipe.toml"
    # One configuration for every bouncd on this database: any of them may process what another stored
    # (the serve's processing loop can claim a message the pipe's ingest has just committed).
    config.write_text(f'[database]\nurl = "{db}"\n\n[verp]\nsecret = "{SECRET}"\ndomain = "drill.bounces.test"\n\n'
                      "[policy]\nrequire_signed_return_path = true\n")  # fmt: skip
    pipe_config = Path(tempfile.mkdtemp(prefix="bouncd-drill-")) / "bouncd.toml"
    pipe_config.parent.chmod(0o755)
    shutil.copy(config, pipe_config)
    pipe_config.chmod(0o644)
    (tmp_path / "serve").mkdir()
    daemon = Daemon(tmp_path / "serve", db, env=bouncd_env("drill"))
    contacts = {route: [f"drill{i}-{route}@mx.bouncd.test" for i in range(3)] for route in ("smtp", "pipe")}
    # Both routes share the return-path domain, so Postfix routes by the full address (transport(5)).
    routes = {signed("drill", a): f"smtp:[127.0.0.1]:{daemon.port}" for a in contacts["smtp"]}
    routes |= {signed("drill", a): "bouncd:" for a in contacts["pipe"]}
    postfix = PostfixInstance(
        routes,
        # Postfix's own retries are far off: after the outage only `postqueue -f` delivers the bounces.
        settings={"queue_run_delay": "300s", "minimal_backoff_time": "300s", "maximal_backoff_time": "600s",
                  "delay_warning_time": "0", "bouncd_destination_recipient_limit": "1"},
        pipe_argv=pipe_argv(wheel, pipe_config),
        pipe_user=PIPE_USER,
    )
    try:
        postfix.start()
        database(False)
        for addresses in contacts.values():
            for address in addresses:
                postfix.send(signed("drill", address), address, f"drill {address}")

        def deferred_bounces() -> int:
            return sum(1 for line in postfix.maillog().splitlines() if "to=<bounces+" in line and "status=deferred" in line)

        assert wait_for(lambda: deferred_bounces() >= 6, 60), postfix.maillog()[-6000:]
        log = postfix.maillog()
        assert "451 4.3.0" in log, "bouncd serve did not answer 451"
        assert "message not stored, retry later" in log, "bouncd ingest did not ask pipe(8) to retry"
        queued = postfix.queued()  # postqueue -j names the null sender MAILER-DAEMON
        assert len(queued) == 6 and {m["sender"] for m in queued} == {"MAILER-DAEMON"}, f"Postfix lost bounces: {queued}"
        assert daemon.proc.poll() is None, "bouncd serve died during the outage"

        database(True)
        assert stats(db)["messages"] == 0, "nothing may be stored while the database was down"
        postfix.flush()
        assert wait_for(lambda: not postfix.queued() and nothing_pending(db) and stats(db)["dnc_contacts"] == 6, 90), (
            f"{postfix.queued()} {stats(db)}\n{[contact(db, a) for addrs in contacts.values() for a in addrs]}\n"
            f"{postfix.maillog()[-6000:]}"
        )
        postfix.flush()  # a second flush finds nothing to send
        time.sleep(1)
        s = stats(db)
        assert s["messages"] == 6 and s["messages_by_state"] == {"processed": 6}, s
        for addresses in contacts.values():
            for address in addresses:
                c = contact(db, address)
                assert c is not None and c["dnc"] is True
                assert len(c["bounces"]) == 1 and len(c["trail"]) == 1, f"recorded more than once: {c}"
    finally:
        with contextlib.suppress(Exception):
            database(True)
        postfix.stop()
        daemon.stop()
        shutil.rmtree(pipe_config.parent, ignore_errors=True)
        admin.dispose()
        engine.dispose()
