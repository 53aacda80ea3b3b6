"""``bouncd serve``: start-up, signals, readiness, shutdown, the processing loop, and listener workers.

Processes::

    bouncd serve (main) ── listener: aiosmtpd server + group commit  ──▶ 250 after commit
       ├── listener worker 1..N-1 (--workers N; SO_REUSEPORT on the same port)
       └── processing process(es): claim stored messages → parse → classify → policy → commit

Acceptance and processing are separate processes so parsing never competes with the event loop for the
GIL, and processing runs niced: under a burst the 250s come first and the backlog drains right after.
On SIGTERM: stop accepting, let mail transactions in progress finish (bounded), commit what is queued,
stop the workers and the processing loop after its current batch, exit 0. A crash (kill -9) leaves only
committed messages, some unprocessed; the next start processes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing as mp
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from sqlalchemy import Engine

from bouncd.config import Settings
from bouncd.errors import ConfigError, StoreError
from bouncd.logs import configure_logging
from bouncd.records import Inbound
from bouncd.smtp import (
    R421_SHUTTING_DOWN,
    BounceHandler,
    Gate,
    GroupCommitter,
    StoreBatch,
    protocol_factory,
)

log = structlog.get_logger("bouncd.daemon")

SHUTDOWN_GRACE_SECONDS = 30.0  # mail transactions in progress get this long to finish on SIGTERM
SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): the first socket passed by systemd
# While a listener is saturated the processing loop steps aside (SQLite has one write lock, and every CPU
# cycle goes to the 250s), but never for longer than this between two batches: it is never starved.
YIELD_MAX_SECONDS = 1.0
# "Saturated": its event loop thread was on the CPU for at least this share of the last LOAD_WINDOW_SECONDS.
# Read from /metrics on 2 cores (SQLite, 32 connections): median 0.64 (5th percentile 0.48) during a burst
# at ~3,700 msgs/s; median 0.36 (max 0.42) at a steady 1,000 msgs/s, when processing must keep pace (it
# does: bench/smtp_bench.py --rate 1000).
# "Mail is waiting for a commit" was the signal before; sampled between batches it was often false (right
# after a commit nothing waits), and processing took ~700 msgs/s of a burst's CPU; now ~115.
BUSY_LOAD = 0.5
LOAD_WINDOW_SECONDS = 0.05
LOAD_STALE_SECONDS = 1.0  # a load older than this is not believed (its listener died or hangs)
LOAD_SMOOTHING = 0.7  # each window's share weighs 0.3 in the published load (an exponential average)


class EventLike(Protocol):
    """threading.Event and Doorbell share this interface."""

    def is_set(self) -> bool: ...
    def set(self) -> None: ...
    def clear(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class Doorbell:
    """An event between processes that a killed process cannot leave locked: a datagram socket pair.

    multiprocessing.Event guards its flag with a semaphore lock; a main process killed (-9) while setting
    it left the lock taken for good, and the processing child hung in wait() forever, orphaned (seen once in
    ~15 runs of the kill -9 test). Here set() sends a byte without blocking (a full buffer means a wake-up
    is already pending), wait() is select(2), clear() reads what is pending. There is no lock to hold.
    """

    def __init__(self) -> None:
        self._recv, self._send = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._recv.setblocking(False)
        self._send.setblocking(False)

    def set(self) -> None:
        """Ring: wake whoever waits (safe in a signal handler; never blocks)."""
        with contextlib.suppress(OSError):  # BlockingIOError: rung already, not yet cleared
            self._send.send(b"\0")

    def is_set(self) -> bool:
        """Rung since the last clear()."""
        return bool(select.select([self._recv], [], [], 0)[0])

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until rung (or ``timeout`` seconds); True when rung."""
        return bool(select.select([self._recv], [], [], timeout)[0])

    def clear(self) -> None:
        """Forget the rings so far."""
        with contextlib.suppress(OSError):
            while self._recv.recv(64):
                pass


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket; SO_REUSEPORT lets several worker processes bind the same port."""
    family, _type, _proto, _canon, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def inherited_socket() -> socket.socket | None:
    """The listening socket systemd passed (socket activation, sd_listen_fds(3)), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    if count < 1:
        return None
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    sock.setblocking(False)
    return sock


class BatchWriter:
    """The listener's group-commit body: one transaction per batch on a long-lived connection.

    One connection is kept (the committer runs one commit at a time, in one thread) instead of a pool
    checkout and an ORM session per batch: that setup cost more CPU than the batch's
    statements (PostgreSQL's pre-ping was a round trip per batch too). A connection found dead (the
    server restarted, an administrator ended the backend) is replaced and the batch retried once; the
    retry is safe because storing is idempotent on SHA-256 - if the lost commit did happen, the retry
    finds the rows and reports them as duplicates. Any other failure raises StoreError (the transaction
    rolled back) and the connection is dropped, so the next batch starts clean.
    """

    def __init__(self, engine: Engine) -> None:
        from bouncd.db.session import writer

        self._engine = writer(engine)  # SQLite: BEGIN IMMEDIATE, the write lock before the first read
        # PostgreSQL: the batch is one INSERT statement, atomic on its own; in autocommit it is its own
        # transaction, committed (WAL flushed) before the server answers it. One round trip per batch instead
        # of three (BEGIN, INSERT, COMMIT), each a wake-up of both sides the SMTP replies waited for.
        self._autocommit = engine.dialect.name == "postgresql"
        self._conn: Any = None

    def __call__(self, items: Sequence[Inbound]) -> Sequence[object]:
        """Store ``items`` in one transaction; StoreError when it rolled back."""
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        from bouncd.db.repo import inbound_row, store_inbound_rows
        from bouncd.db.session import describe_db_error

        rows = [inbound_row(item, compress=False) for item in items]  # processing compresses them (repo.pack_raw)
        for attempt in (1, 2):
            conn, self._conn = self._conn, None
            try:
                if conn is None:
                    conn = self._engine.connect()
                    if self._autocommit:
                        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                if self._autocommit:
                    refs = store_inbound_rows(conn, rows)
                else:
                    with conn.begin():
                        refs = store_inbound_rows(conn, rows)
                self._conn = conn
                return refs
            except (SQLAlchemyError, StoreError) as exc:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                cause = exc if isinstance(exc, DBAPIError) else exc.__cause__
                if attempt == 1 and isinstance(cause, DBAPIError) and cause.connection_invalidated:
                    continue
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(describe_db_error(exc)) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Release the kept connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def make_store_batch(engine: Engine) -> StoreBatch:
    """The blocking group-commit body: store every message of the batch in one transaction."""
    return BatchWriter(engine)


def _die_with_parent() -> None:
    # Linux prctl(PR_SET_PDEATHSIG, SIGTERM): a child must not outlive a main process killed with -9.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


# --- the processing loop ------------------------------------------------------------------------


def processing_loop(
    engine: Engine,
    settings: Settings,
    stop: EventLike,
    wake: EventLike,
    *,
    on_batch: Callable[[int, float], None] | None = None,
    parent_pid: int | None = None,
    listener_busy: Callable[[], bool] | None = None,
    terminated: threading.Event | None = None,
    yield_max: float = YIELD_MAX_SECONDS,
) -> int:
    """Process stored messages until ``stop`` is set; sleep on ``wake`` (set after each commit) when idle.

    With ``listener_busy``, acceptance comes first: while it is true the loop pauses between batches
    (for at most ``yield_max`` seconds at a time). Every turn takes a whole batch: parsing happens before
    SQLite's write lock, which a batch of 100 then holds for ~15 ms, and one message per transaction
    could not keep up (measured with bench/smtp_bench.py, 8,000 messages, SQLite: one per transaction
    270 msgs/s processed and 26 s to drain; batches 1,037 msgs/s and 3.4 s, acceptance 2,068 -> 1,874/s).
    """
    from bouncd.ingest import process_pending

    total = 0
    last_turn = time.monotonic()
    while not stop.is_set() and not (terminated is not None and terminated.is_set()):
        if parent_pid is not None and os.getppid() != parent_pid:
            log.warning("processing.orphaned")
            break
        busy = listener_busy is not None and listener_busy()
        if busy and time.monotonic() - last_turn < yield_max:
            stop.wait(LOAD_WINDOW_SECONDS / 2)
            continue
        wake.clear()  # cleared before the claim, so a commit that lands during it wakes the next round
        last_turn = time.monotonic()
        started = time.perf_counter()
        try:
            n = process_pending(engine, settings, limit=settings.processing.batch)
        except StoreError as exc:
            # The database is down or locked: the messages are safe in it (or were never 250'd); retry.
            log.warning("processing.store_error", error=str(exc))
            stop.wait(settings.processing.poll_seconds)
            continue
        except Exception as exc:  # the edge of the worker loop: log, back off, never die
            log.error("processing.error", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            stop.wait(settings.processing.poll_seconds)
            continue
        total += n
        if n and on_batch is not None:
            on_batch(n, time.perf_counter() - started)
        if n == 0:
            wake.wait(settings.processing.poll_seconds)
    return total


def _processor_main(settings: Settings, stop: EventLike, wake: EventLike, loads: Any, index: int, parent_pid: int) -> None:
    """Entry point of a processing process."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; main decides
    terminated = threading.Event()

    def on_term(*_: object) -> None:
        terminated.set()
        wake.set()  # a Doorbell: safe here, and the loop stops waiting at once

    signal.signal(signal.SIGTERM, on_term)
    configure_logging(settings.log_format, settings.log_level)
    structlog.contextvars.bind_contextvars(process=f"processor-{index}")
    if settings.processing.nice:
        with contextlib.suppress(OSError):
            os.nice(settings.processing.nice)
    from bouncd.db.session import make_engine

    engine = make_engine(settings.database.url)
    log.info("processing.started", pid=os.getpid())
    total = processing_loop(
        engine, settings, stop, wake, parent_pid=parent_pid, listener_busy=lambda: saturated(loads), terminated=terminated
    )
    engine.dispose()
    log.info("processing.stopped", processed=total)


# --- one listener -------------------------------------------------------------------------------


async def publish_load(loads: Any, index: int, window: float = LOAD_WINDOW_SECONDS) -> None:
    """Every ``window`` seconds, store in listener ``index``'s slot of ``loads`` the share of it this event
    loop's thread spent on the CPU, and when (CLOCK_MONOTONIC, one clock for every process on the host):
    the listener's saturation, which the processing loop reads (``saturated``) and /metrics shows."""
    cpu, wall, load = time.thread_time(), time.monotonic(), 0.0
    while True:
        await asyncio.sleep(window)
        now_cpu, now_wall = time.thread_time(), time.monotonic()
        # Smoothed over ~4 windows: one 50 ms window alone read below 0.5 in 14% of a burst and above it
        # now and then at a steady 1,000 msgs/s (median 0.64 vs 0.35, sampled from /metrics on 2 cores).
        load = LOAD_SMOOTHING * load + (1 - LOAD_SMOOTHING) * (now_cpu - cpu) / max(now_wall - wall, 1e-6)
        loads[2 * index] = load
        loads[2 * index + 1] = now_wall
        cpu, wall = now_cpu, now_wall


def saturated(loads: Any, now: float | None = None) -> bool:
    """True when a listener's last published load is at least BUSY_LOAD and fresh. A slot not updated for
    LOAD_STALE_SECONDS is ignored: a listener killed at full load must not slow processing for good."""
    now = time.monotonic() if now is None else now
    return any(
        loads[i] >= BUSY_LOAD and now - loads[i + 1] < LOAD_STALE_SECONDS for i in range(0, len(loads) - 1, 2)
    )


@dataclass
class Listener:
    """One process's SMTP/LMTP server: admission gate, handler and group committer on the running loop."""

    settings: Settings
    store_batch: StoreBatch
    on_commit: Callable[[int], None] | None = None
    loads: Any = None  # shared per-listener (load, when) pairs (publish_load); None: a slot of its own
    index: int = 0
    gate: Gate = field(init=False)
    committer: GroupCommitter = field(init=False)
    handler: BounceHandler = field(init=False)
    server: asyncio.AbstractServer | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.gate = Gate(self.settings)
        self.committer = GroupCommitter(
            self.store_batch,
            wait_ms=self.settings.smtp.group_commit_ms,
            on_commit=self.on_commit,
        )
        self.handler = BounceHandler(self.settings, self.committer, lmtp=self.settings.smtp.lmtp)
        if self.loads is None:
            self.loads, self.index = [0.0, 0.0], 0
        self._meter: asyncio.Task[None] | None = None

    @property
    def load(self) -> float:
        """Share of the last LOAD_WINDOW_SECONDS this listener's event loop spent on the CPU."""
        return float(self.loads[2 * self.index])

    async def start(self, sock: socket.socket) -> tuple[str, int]:
        """Serve on an already bound socket; returns the (host, port) it listens on."""
        self.committer.start()
        self._meter = asyncio.get_running_loop().create_task(publish_load(self.loads, self.index), name="load-meter")
        factory = protocol_factory(self.settings, self.handler, self.gate)
        self.server = await asyncio.get_running_loop().create_server(factory, sock=sock)
        host, port = sock.getsockname()[:2]
        return str(host), int(port)

    async def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop accepting, let transactions in progress finish (up to ``grace``), commit the queue, close."""
        self.gate.accepting = False
        if self.server is not None:
            self.server.close()
        self.gate.close_sessions(R421_SHUTTING_DOWN)  # idle sessions: RFC 5321 section 3.8
        deadline = time.monotonic() + grace
        while self.gate.busy_sessions() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.gate.busy_sessions():
            log.warning("serve.shutdown_cut", sessions=self.gate.busy_sessions())
        self.gate.close_sessions(R421_SHUTTING_DOWN, busy_too=True)
        await self.committer.close()
        if self._meter is not None:
            self._meter.cancel()
        self.loads[2 * self.index] = 0.0
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)


async def _run_listener(
    settings: Settings,
    sock: socket.socket,
    wake: EventLike,
    loads: Any,
    index: int = 0,
    *,
    on_started: Callable[[tuple[str, int], Listener], None] | None = None,
    on_stopping: Callable[[], None] | None = None,
) -> None:
    from bouncd.db.session import make_engine

    engine = make_engine(settings.database.url)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    listener = Listener(settings, make_store_batch(engine), on_commit=lambda _n: wake.set(), loads=loads, index=index)
    where = await listener.start(sock)
    if on_started is not None:
        on_started(where, listener)
    else:
        log.info("serve.worker_listening", host=where[0], port=where[1], pid=os.getpid())
    await stopping.wait()
    log.info("serve.stopping", sessions=listener.gate.open_sessions)
    if on_stopping is not None:
        on_stopping()
    await listener.stop()
    engine.dispose()


def _listener_main(settings: Settings, sock: socket.socket, wake: EventLike, loads: Any, index: int) -> None:
    """Entry point of listener worker ``index`` (1..N-1)."""
    _die_with_parent()
    configure_logging(settings.log_format, settings.log_level)
    structlog.contextvars.bind_contextvars(process=f"listener-{index}")
    asyncio.run(_run_listener(settings, sock, wake, loads, index))


# --- serve ----------------------------------------------------------------------------------------


class _Notifier:
    """sd_notify(3) through the sdnotify package; silent when not run by systemd."""

    def __init__(self) -> None:
        self._n: Any = None
        if os.environ.get("NOTIFY_SOCKET"):
            try:
                import sdnotify

                self._n = sdnotify.SystemdNotifier()
            except ImportError:
                log.warning("serve.no_sdnotify")

    def notify(self, state: str) -> None:
        if self._n is not None:
            self._n.notify(state)


def serve(settings: Settings) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit code."""
    from bouncd.db import upgrade
    from bouncd.db.session import make_engine

    configure_logging(settings.log_format, settings.log_level)
    engine = make_engine(settings.database.url)
    upgrade(engine)  # a fresh clone or a new database: create or migrate the schema before accepting mail
    on_sqlite = engine.dialect.name == "sqlite"
    engine.dispose()

    workers = settings.smtp.workers
    if workers > 1 and on_sqlite:
        # Measured (bench/smtp_bench.py, 2 cores): --workers 2 on SQLite accepted 0.48-0.50 of a do-nothing
        # handler against 0.78-0.83 with one listener; the writers take turns for SQLite's one write lock.
        log.warning("serve.workers_on_sqlite", workers=workers, hint="SQLite has one write lock: one listener is faster")
    sock = inherited_socket()
    activated = sock is not None
    if sock is None:
        want_host, want_port = parse_listen(settings.smtp.listen)
        try:
            sock = bind_socket(want_host, want_port, reuse_port=workers > 1)
        except OSError as exc:  # in use, no permission for a port below 1024, no such address
            raise ConfigError(f"cannot listen on {settings.smtp.listen}: {exc.strerror or exc}") from None
    host, port = str(sock.getsockname()[0]), int(sock.getsockname()[1])
    ctx = mp.get_context("spawn")
    stop, wake = Doorbell(), Doorbell()  # stop is never cleared: once rung it stays set
    # Each listener's load (publish_load), one slot each, written by that listener only: no lock needed.
    loads = ctx.Array("d", 2 * max(1, workers), lock=False)
    children: list[Any] = []
    for i in range(settings.processing.processes):
        p = ctx.Process(target=_processor_main, args=(settings, stop, wake, loads, i, os.getpid()), name=f"bouncd-processor-{i}")
        p.start()
        children.append(p)
    listeners: list[Any] = []
    for i in range(1, workers):
        # Socket activation hands us one socket: workers share it. Otherwise each binds its own with
        # SO_REUSEPORT and the kernel spreads connections across them.
        wsock = sock if activated else bind_socket(host, port, reuse_port=True)
        w = ctx.Process(target=_listener_main, args=(settings, wsock, wake, loads, i), name=f"bouncd-listener-{i}")
        w.start()
        if not activated:
            wsock.close()
        listeners.append(w)

    notifier = _Notifier()
    metrics_server: list[Any] = []

    def started(where: tuple[str, int], listener: Listener) -> None:
        proto = "lmtp" if settings.smtp.lmtp else "smtp"
        if settings.metrics.listen:
            from bouncd.metrics import start_metrics_server

            metrics_server.append(start_metrics_server(settings, listener))
        log.info("serve.listening", host=where[0], port=where[1], protocol=proto, workers=workers,
                 processors=settings.processing.processes, socket_activated=activated)
        # Scripts and tests read this line to learn the port chosen for --listen HOST:0.
        print(f"bouncd: listening on {where[0]}:{where[1]} ({proto})", file=sys.stderr, flush=True)
        notifier.notify(f"READY=1\nSTATUS=listening on {where[0]}:{where[1]} ({proto})\nMAINPID={os.getpid()}")

    def stopping() -> None:
        notifier.notify("STOPPING=1")
        for w in listeners:
            if w.is_alive():
                w.terminate()  # SIGTERM: each worker shuts down gracefully on its own

    try:
        asyncio.run(_run_listener(settings, sock, wake, loads, on_started=started, on_stopping=stopping))
    finally:
        for w in listeners:
            w.join(SHUTDOWN_GRACE_SECONDS + 5)
        stop.set()
        wake.set()
        for p in children:
            p.join(60)
            if p.is_alive():
                p.terminate()
        for server in metrics_server:
            server.shutdown()
    log.info("serve.stopped")
    return 0


# --- commands (registered in bouncd.cli.build_parser) ---------------------------------------------


def settings_from_args(args: Any) -> Settings:
    """Settings from --config (or the default search) with the command-line overrides applied."""
    import dataclasses

    from bouncd.config import load_settings, validate

    settings = load_settings(getattr(args, "config", None))
    smtp = settings.smtp
    if getattr(args, "listen", None):
        smtp = dataclasses.replace(smtp, listen=args.listen)
    if getattr(args, "bounce_domain", None):
        smtp = dataclasses.replace(smtp, bounce_domains=tuple(args.bounce_domain))
    if getattr(args, "lmtp", False):
        smtp = dataclasses.replace(smtp, lmtp=True)
    if getattr(args, "workers", None):
        smtp = dataclasses.replace(smtp, workers=args.workers)
    settings = dataclasses.replace(settings, smtp=smtp)
    if getattr(args, "db", None):
        settings = dataclasses.replace(settings, database=dataclasses.replace(settings.database, url=args.db))
    validate(settings)
    return settings


def cmd_serve(args: Any) -> int:
    """``bouncd serve``."""
    return serve(settings_from_args(args))


def cmd_config_check(args: Any) -> int:
    """``bouncd config check``: print the effective settings (secrets masked), or the error in plain words."""
    import json

    from bouncd.config import as_dict

    settings = settings_from_args(args)
    data = as_dict(settings)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    for key, value in data.items():
        if isinstance(value, dict):
            print(f"[{key}]")
            for k, v in value.items():
                print(f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}")
            print()
        else:
            print(f"{key} = {json.dumps(value)}")
    print("bouncd: configuration ok", file=sys.stderr)
    return 0


def cmd_verp_encode(args: Any) -> int:
    """``bouncd verp encode ADDRESS...``: print the signed return path of each address."""
    from bouncd import verp

    settings = settings_from_args(args)
    for address in args.addresses:
        print(verp.encode(settings.verp, address))
    return 0


def add_commands(sub: Any, common: Any) -> None:
    """Register serve, config check and verp encode on the CLI's subparsers (``common``: --db, --config)."""
    p = sub.add_parser("serve", parents=[common], help="receive bounces over SMTP/LMTP until SIGTERM")
    p.add_argument("--listen", metavar="HOST:PORT", help="address to listen on (port 0: pick a free one)")
    p.add_argument("--bounce-domain", action="append", metavar="DOMAIN", help="accept mail for this domain (repeatable)")
    p.add_argument("--lmtp", action="store_true", help="speak LMTP (RFC 2033) instead of SMTP")
    p.add_argument("--workers", type=int, metavar="N", help="listener processes sharing the port (SO_REUSEPORT)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("config", help="configuration")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = csub.add_parser("check", parents=[common], help="print the effective settings, or what is wrong with them")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_config_check)

    p = sub.add_parser("verp", help="signed return paths")
    vsub = p.add_subparsers(dest="verp_command", metavar="ACTION", required=True)
    v = vsub.add_parser("encode", parents=[common], help="print the signed return path for each ADDRESS")
    v.add_argument("addresses", nargs="+", metavar="ADDRESS")
    v.set_defaults(func=cmd_verp_encode)

    from bouncd.archive import cmd_import

    p = sub.add_parser("import", parents=[common], help="store and process every message of an mbox, maildir or .eml folder")
    p.add_argument("path", metavar="PATH", help="an mbox file, a maildir, a directory of .eml files, or one message")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_import)
