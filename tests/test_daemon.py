"""``bouncd serve`` as a real process: end to end to DNC, graceful SIGTERM, kill -9 recovery, workers, metrics.

Each test starts ``python -m bouncd serve --listen 127.0.0.1:0`` in a temp directory, reads the port it
prints on stderr, and talks to it with ``smtplib``.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from bouncd.db.models import Message
from bouncd.db.repo import find_contact
from bouncd.db.session import make_engine, transaction
from tests.conftest import HARD, dsn_for

ROOT = Path(__file__).resolve().parent.parent
RCPT = ["b@bounces.example.org"]
NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """One ``bouncd serve`` process."""

    def __init__(self, workdir: Path, db_url: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.log_path = workdir / f"serve-{time.monotonic_ns()}.log"
        full_env = {**os.environ, "BOUNCD_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT), **(env or {})}
        full_env.pop("BOUNCD_CONFIG", None)
        cmd = [sys.executable, "-m", "bouncd", "serve", "--listen", "127.0.0.1:0", "--db", db_url,
               "--bounce-domain", "bounces.example.org", *args]  # fmt: skip
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.PIPE, env=full_env)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline().decode()
        if "listening on" not in line:
            self.proc.kill()
            raise AssertionError(f"serve did not start: {line}{self.proc.stderr.read().decode()}{self.log_path.read_text()}")
        self.port = int(line.split("listening on ")[1].split(" ")[0].rsplit(":", 1)[1])
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep the pipe drained

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=30)

    def events(self) -> list[dict[str, object]]:
        rows = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                rows.append(json.loads(line))
        return rows

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemons on demand; every one still running is stopped afterwards."""
    started: list[Daemon] = []

    def start(db_url: str, *args: str, env: dict[str, str] | None = None) -> Daemon:
        d = Daemon(tmp_path, db_url, *args, env=env)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


def _wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _is_dnc(db_url: str, address: str) -> bool:
    engine = make_engine(db_url)
    try:
        with transaction(engine) as s:
            c = find_contact(s, address)
            return bool(c and c.dnc)
    finally:
        engine.dispose()


def _count(db_url: str, *where: object) -> int:
    engine = make_engine(db_url)
    try:
        with transaction(engine) as s:
            return int(s.execute(select(func.count()).select_from(Message).where(*where)).scalar_one())  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_hard_bounce_end_to_end_to_dnc(daemons: Callable[..., Daemon], db_url: str, tmp_path: Path) -> None:
    """serve on port 0: a hard bounce gets 250, the processing loop makes the contact DNC, stats counts it."""
    d = daemons(db_url)
    with d.client() as c:
        c.ehlo("mx.example.net")
        c.mail("<>")
        assert c.rcpt("nobody@example.com")[0] == 550
        assert c.rcpt(RCPT[0])[0] == 250
        assert c.data(dsn_for(HARD, "gone@example.net", NOW))[0] == 250
    assert _wait_for(lambda: _is_dnc(db_url, "gone@example.net"))
    out = subprocess.run([sys.executable, "-m", "bouncd", "stats", "--json", "--db", db_url], cwd=tmp_path,
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    messages = json.loads(out.stdout)["messages"]
    assert (sum(messages.values()) if isinstance(messages, dict) else messages) == 1
    assert d.stop() == 0
    events = [e["event"] for e in d.events()]
    for expected in ("serve.listening", "message.accepted", "dnc.raised", "serve.stopping", "serve.stopped"):
        assert expected in events


def test_sigterm_finishes_the_open_transaction_then_exits_0(daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    """SIGTERM: new connections are refused, idle sessions get 421, a transaction in progress still gets its
    250 after the commit, and the process exits 0."""
    db_url = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    d = daemons(db_url)
    busy, idle = d.client(), d.client()
    busy.ehlo("mx")
    idle.ehlo("mx")
    busy.mail("<>")
    busy.rcpt(RCPT[0])
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises((ConnectionRefusedError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError)):
        d.client().noop()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        idle.noop()
        idle.noop()
    assert busy.data(dsn_for(HARD, "late@example.net", NOW))[0] == 250
    busy.close()
    assert d.proc.wait(30) == 0
    assert _count(db_url) == 1


def test_kill_9_mid_load_loses_nothing_that_got_250(daemons: Callable[..., Daemon], db_url: str) -> None:
    """kill -9 the daemon under load from 8 clients, restart it: every message that got a 250 is stored exactly
    once, a retry of every message leaves one row each, and the restarted daemon processes the backlog."""
    d = daemons(db_url)
    acked: list[bytes] = []
    attempted: list[bytes] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        i = 0
        while not stop.is_set():
            raw = dsn_for(HARD, f"w{worker}-{i}@example.net", NOW)
            i += 1
            with lock:
                attempted.append(raw)
            try:
                with d.client() as c:
                    c.sendmail("", RCPT, raw)
            except (OSError, smtplib.SMTPException):
                return
            with lock:
                acked.append(raw)

    threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    assert _wait_for(lambda: len(acked) >= 150, 30)
    children = _children(d.proc.pid)
    assert children, "serve runs its processing loop in a child process"
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait(10)
    assert _wait_for(lambda: not any(Path(f"/proc/{c}").exists() for c in children), 10), "orphaned children"
    stop.set()
    for t in threads:
        t.join(30)

    engine = make_engine(db_url)
    try:
        with transaction(engine) as s:
            stored = {row[0]: row[1] for row in s.execute(select(Message.sha256, func.count()).group_by(Message.sha256))}
    finally:
        engine.dispose()
    for raw in acked:
        assert stored.get(hashlib.sha256(raw).hexdigest()) == 1
    assert set(stored) <= {hashlib.sha256(r).hexdigest() for r in attempted}

    d2 = daemons(db_url)  # the MTA retries everything it holds: all of it, to be sure
    with d2.client() as c:
        for raw in attempted:
            c.sendmail("", RCPT, raw)
    assert _count(db_url) == len(attempted)
    assert _wait_for(lambda: _count(db_url, Message.state == "pending") == 0, 60)
    assert _count(db_url, Message.state == "processed") == len(attempted)
    assert d2.stop() == 0


def test_two_workers_share_the_port(daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    """--workers 2: two listener processes on one port (SO_REUSEPORT) both accept and store mail."""
    db_url = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    d = daemons(db_url, "--workers", "2")
    assert _wait_for(lambda: "serve.worker_listening" in [e["event"] for e in d.events()])

    def send(i: int) -> None:
        with d.client() as c:
            c.sendmail("", RCPT, dsn_for(HARD, f"user{i}@example.net", NOW))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(60)))
    assert _count(db_url) == 60
    assert d.stop() == 0
    by_process = {e.get("process", "main") for e in d.events() if e["event"] == "message.accepted"}
    assert by_process == {"main", "listener-1"}
    assert "serve.workers_on_sqlite" in [e["event"] for e in d.events()]  # slower than one listener there


def test_metrics_and_healthz(daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    """The metrics listener serves /healthz (200 while the database answers) and Prometheus counters that move."""
    db_url = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    port = _free_port()
    d = daemons(db_url, env={"BOUNCD_METRICS_LISTEN": f"127.0.0.1:{port}"})
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{base}/healthz", timeout=10) as r:
        assert r.status == 200 and r.read() == b"ok\n"
    with d.client() as c:
        c.sendmail("", RCPT, dsn_for(HARD, "gone@example.net", NOW))
    assert _wait_for(lambda: _is_dnc(db_url, "gone@example.net"))

    def scrape() -> str:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
            return r.read().decode()

    text = scrape()
    assert 'bouncd_smtp_messages_total{outcome="accepted"} 1.0' in text
    assert 'bouncd_bounces_total{hard="true",kind="bounce",reason="userunknown"} 1.0' in text
    assert 'bouncd_dnc_changes_total{action="on",source="hard_bounce"} 1.0' in text
    assert "bouncd_backlog_messages 0.0" in text
    assert "bouncd_commit_batch_size_count 1.0" in text
    assert "bouncd_processing_latency_seconds_count 1.0" in text
    load = next(line for line in text.splitlines() if line.startswith("bouncd_listener_load "))
    assert 0.0 <= float(load.split()[1]) < 0.5  # one message in a second: far from saturated
    assert d.stop() == 0


def test_healthz_fails_when_the_database_is_unreachable() -> None:
    """health() reports the database error when nothing listens at the configured PostgreSQL address."""
    from bouncd.metrics import health

    engine = make_engine(f"postgresql+psycopg://nobody@127.0.0.1:{_free_port()}/nothing?connect_timeout=2")
    ok, words = health(engine)
    engine.dispose()
    assert ok is False and words.startswith("database error")


def test_bad_listen_address_is_a_clear_error(tmp_path: Path) -> None:
    """serve with an unusable --listen exits 1 with a one-line message, not a traceback."""
    out = subprocess.run([sys.executable, "-m", "bouncd", "serve", "--listen", "nowhere", "--db", f"sqlite:///{tmp_path}/b.db"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 1
    assert "HOST:PORT" in out.stderr and "Traceback" not in out.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        out = subprocess.run([sys.executable, "-m", "bouncd", "serve", "--listen", busy, "--db", f"sqlite:///{tmp_path}/b.db"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 1
    assert f"cannot listen on {busy}: Address already in use" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.skipif(not Path("/usr/bin/systemd-socket-activate").exists(), reason="systemd-socket-activate not installed")
def test_socket_activation(tmp_path: Path) -> None:
    """Started by systemd-socket-activate (as by bouncd.socket): serve takes the passed socket and accepts mail."""
    port = _free_port()
    db_url = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BOUNCD_LOG_FORMAT": "json"}
    cmd = ["/usr/bin/systemd-socket-activate", "-l", f"127.0.0.1:{port}", sys.executable, "-m", "bouncd", "serve",
           "--db", db_url, "--bounce-domain", "bounces.example.org"]  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        assert _wait_for(lambda: "Listening on" in log.read_text(), 10), log.read_text()
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:  # the first connection starts the daemon
            c.sendmail("", RCPT, dsn_for(HARD, "gone@example.net", NOW))
        assert _count(db_url) == 1
        events = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
        listening = next(e for e in events if e["event"] == "serve.listening")
        assert listening["socket_activated"] is True and listening["port"] == port
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_readiness_and_stopping_are_notified_to_systemd(daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    """Under systemd (NOTIFY_SOCKET set), serve sends READY=1 once it listens and STOPPING=1 on SIGTERM."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sd:
        sd.bind(str(path))
        sd.settimeout(20)
        d = daemons(f"sqlite:///{tmp_path / 'b.sqlite3'}", env={"NOTIFY_SOCKET": str(path)})
        ready = sd.recv(4096).decode()
        assert "READY=1" in ready.split("\n") and f"listening on 127.0.0.1:{d.port}" in ready
        d.proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in sd.recv(4096).decode().split("\n")
        assert d.proc.wait(30) == 0


# --- acceptance first: the processing loop and the listener's load --------------------------------------


def _store_pending(db_url: str, n: int) -> None:
    from bouncd.db import repo
    from bouncd.records import Inbound

    engine = make_engine(db_url)
    try:
        with transaction(engine) as s:
            raws = [dsn_for(HARD, f"u{i}@example.net", NOW) for i in range(n)]
            repo.store_inbound(s, [Inbound(raw=r, received_at=NOW, rcpt_tos=tuple(RCPT), protocol="smtp") for r in raws])
    finally:
        engine.dispose()


def _loop_in_thread(
    db_url: str, busy: Callable[[], bool], yield_max: float, batch: int
) -> tuple[threading.Event, threading.Thread]:
    import dataclasses

    from bouncd.config import Settings
    from bouncd.daemon import processing_loop

    settings = Settings()
    settings = dataclasses.replace(settings, processing=dataclasses.replace(settings.processing, batch=batch, poll_seconds=0.05))
    engine = make_engine(db_url)
    stop, wake = threading.Event(), threading.Event()

    def run() -> None:
        processing_loop(engine, settings, stop, wake, listener_busy=busy, yield_max=yield_max)
        engine.dispose()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return stop, thread


def test_processing_steps_aside_while_the_listener_is_busy(engine: Engine, db_url: str) -> None:
    """While the listener is saturated nothing is processed (within yield_max); once it is not, the backlog drains."""
    from bouncd.db.models import Message as M

    _store_pending(db_url, 30)
    busy = threading.Event()
    busy.set()
    stop, thread = _loop_in_thread(db_url, busy.is_set, yield_max=60.0, batch=10)
    try:
        time.sleep(0.5)
        assert _count(db_url, M.state == "pending") == 30
        busy.clear()
        assert _wait_for(lambda: _count(db_url, M.state == "pending") == 0)
    finally:
        stop.set()
        thread.join(30)
    assert _count(db_url, M.state == "processed") == 30


def test_a_busy_listener_never_starves_processing(engine: Engine, db_url: str) -> None:
    """A listener busy all the time still lets one batch through per yield_max."""
    from bouncd.db.models import Message as M

    _store_pending(db_url, 15)
    started = time.monotonic()
    stop, thread = _loop_in_thread(db_url, lambda: True, yield_max=0.3, batch=5)
    try:
        time.sleep(0.1)
        assert _count(db_url, M.state == "pending") == 15  # the first batch waits for yield_max
        assert _wait_for(lambda: _count(db_url, M.state == "pending") == 0)
    finally:
        stop.set()
        thread.join(30)
    assert time.monotonic() - started >= 0.9  # three batches of five, one per 0.3 s at most


def test_publish_load_measures_the_event_loop_thread() -> None:
    """The listener's load is the share of each window its event loop thread spent on the CPU."""
    import asyncio

    from bouncd.daemon import BUSY_LOAD, publish_load

    loads = [0.0, 0.0]

    async def main() -> tuple[float, float]:
        meter = asyncio.create_task(publish_load(loads, 0, window=0.05))
        await asyncio.sleep(0.3)
        idle = loads[0]
        end = time.monotonic() + 0.4
        while time.monotonic() < end:
            sum(range(20_000))  # work on the loop's thread, in short slices like SMTP sessions
            await asyncio.sleep(0)
        busy = loads[0]
        meter.cancel()
        return idle, busy

    idle, busy = asyncio.run(main())
    assert idle < 0.2 < BUSY_LOAD < busy


def test_a_stale_load_does_not_hold_processing_back() -> None:
    """A listener killed at full load leaves its last load behind: believed only while it is fresh."""
    from bouncd.daemon import LOAD_STALE_SECONDS, saturated

    now = 1000.0
    assert saturated([0.9, now - 0.05], now)
    assert not saturated([0.3, now - 0.05], now)
    assert not saturated([0.9, now - LOAD_STALE_SECONDS - 0.1], now)
    assert saturated([0.1, now, 0.8, now - 0.1], now)  # any listener, of several
    assert not saturated([0.1, now, 0.8, now - 5.0], now)


def _ring_later(bell: object, delay: float) -> None:
    time.sleep(delay)
    bell.set()  # type: ignore[attr-defined]


def test_doorbell_wakes_another_process_and_never_blocks() -> None:
    """The processing wake-up: set() from another process ends wait(); clear() forgets; a full buffer never
    blocks the ringer (a commit must not wait on processing); there is no lock a killed process could keep."""
    import multiprocessing as mp

    from bouncd.daemon import Doorbell

    bell = Doorbell()
    assert not bell.is_set() and bell.wait(0.05) is False
    child = mp.get_context("spawn").Process(target=_ring_later, args=(bell, 0.3))
    child.start()
    started = time.monotonic()
    assert bell.wait(20) is True and time.monotonic() - started >= 0.2
    child.join(10)
    for _ in range(100_000):  # far more than the socket buffer holds
        bell.set()
    assert bell.is_set()
    bell.clear()
    assert not bell.is_set() and bell.wait(0) is False
