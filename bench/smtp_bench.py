"""SMTP load benchmark: bouncd (durable acceptance, processing loop running) vs a do-nothing aiosmtpd handler.

One run measures, on this machine and over loopback only:

- ``noop``: aiosmtpd with a handler that answers 250 and keeps nothing (the ceiling);
- ``bouncd-sqlite``: ``bouncd serve`` on a SQLite file (WAL, synchronous=FULL), processing running;
- ``bouncd-postgres``: ``bouncd serve`` on a PostgreSQL server this script starts (skipped without binaries).

Each target gets the same load: ``--connections`` concurrent SMTP sessions (default 32), each sending
messages back to back over one connection (as an MTA's connection cache does), ``--messages`` in total.
Printed per target: accepted msgs/s, ratio to noop, latency p50/p99 (MAIL FROM to the reply after DATA),
lost messages (got 250 but not in the database), time for the backlog to drain after the load ends and
the processing rate, the server's CPU time per accepted message (its processes, during the load; the
PostgreSQL server's own processes are not counted), and the peak resident memory of the server's
processes (sampled four times during the run too, to show it stays flat).

Fair comparison: every target gets the same client, the same messages (sizes) and the same concurrency;
bouncd logs at its default level (info: one ``message.accepted`` event per message, as deployed), its
output going to /dev/null like the do-nothing server's. On a shared machine, ``--repeat N`` runs every
target N times (interleaved) and reports each target's median run by rate.

    .venv/bin/python bench/smtp_bench.py                       # 20,000 messages per target
    .venv/bin/python bench/smtp_bench.py --messages 100000     # the long run
    .venv/bin/python bench/smtp_bench.py --only bouncd-sqlite
    .venv/bin/python bench/smtp_bench.py --repeat 3             # medians of three interleaved rounds
    .venv/bin/python bench/smtp_bench.py --rate 1000 --only bouncd-sqlite   # a steady stream: does
                                                                # processing keep pace? (backlog column)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(Path(__file__).parent))
from ingest_bench import temp_postgres  # noqa: E402  one way to start a throwaway server for every bench

RCPT = b"b@bounces.example.org"

DSN = (
    "From: MAILER-DAEMON@mx.example.net\r\n"
    "To: bounces@example.org\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "Date: Mon, 02 Nov 2026 09:30:00 +0000\r\n"
    "Message-ID: <dsn-{n}@mx.example.net>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
    "\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
    "This is the mail system at host mx.example.net. Your message could not be delivered.\r\n"
    "\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
    "Reporting-MTA: dns; mx.example.net\r\nArrival-Date: Mon, 02 Nov 2026 09:30:00 +0000\r\n\r\n"
    "Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\n"
    "Remote-MTA: dns; mx.remote.example\r\nDiagnostic-Code: smtp; {diag}\r\n"
    "\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    "Message-ID: <campaign-{n}@example.org>\r\nFrom: news@example.org\r\nTo: {rcpt}\r\nSubject: Our newsletter\r\n"
    "\r\n--B--\r\n"
)
KINDS = (
    ("5.1.1", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"),
    ("4.2.2", "452 4.2.2 <{rcpt}>: Mailbox full, over quota"),
    ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"),
)


def message(n: int, run: str) -> bytes:
    """A realistic one-recipient DSN, distinct per (run, n): a hard, a soft and a spam-block mix."""
    rcpt = f"user{n}.{run}@example.net"
    status, diag = KINDS[n % len(KINDS)]
    return DSN.format(n=f"{run}-{n}", rcpt=rcpt, status=status, diag=diag.format(rcpt=rcpt)).encode()


# --- load generator -------------------------------------------------------------------------------


@dataclass
class Load:
    """What the clients saw."""

    acked: int = 0
    refused: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0


async def _reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return int(line[:3])


async def _session(port: int, numbers: list[int], run: str, load: Load, pace: tuple[float, float] | None) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await _reply(reader)
        writer.write(b"EHLO bench.example\r\n")
        await _reply(reader)
        while numbers:
            n = numbers.pop()
            if pace is not None:  # --rate: message n is due at start + (n - 1) / rate
                start, rate = pace
                delay = start + (n - 1) / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            body = message(n, run).replace(b"\r\n.", b"\r\n..")
            t0 = time.perf_counter()
            writer.write(b"MAIL FROM:<>\r\n")
            await _reply(reader)
            writer.write(b"RCPT TO:<" + RCPT + b">\r\n")
            await _reply(reader)
            writer.write(b"DATA\r\n")
            if await _reply(reader) != 354:
                load.errors += 1
                continue
            writer.write(body + b".\r\n")
            code = await _reply(reader)
            load.latencies.append(time.perf_counter() - t0)
            if code == 250:
                load.acked += 1
            else:
                load.refused += 1
        writer.write(b"QUIT\r\n")
        await _reply(reader)
    except (ConnectionError, OSError):
        load.errors += 1
    finally:
        writer.close()


async def _drive(port: int, total: int, connections: int, run: str, rate: float | None) -> Load:
    numbers = list(range(total, 0, -1))
    load = Load()
    t0 = time.perf_counter()
    pace = (t0, rate) if rate else None
    await asyncio.gather(*(_session(port, numbers, run, load, pace) for _ in range(connections)))
    load.seconds = time.perf_counter() - t0
    return load


def drive(port: int, total: int, connections: int, run: str, rate: float | None = None) -> Load:
    """Send ``total`` messages over ``connections`` concurrent sessions (as fast as they are answered, or
    ``rate`` messages per second in all); one event loop, this process."""
    return asyncio.run(_drive(port, total, connections, run, rate))


# --- servers ------------------------------------------------------------------------------------


def _noop_server(port_file: str) -> None:
    """A do-nothing aiosmtpd server (the same SMTP protocol class bouncd uses): 250 for every message."""
    from aiosmtpd.smtp import SMTP

    class Noop:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Noop(), hostname="noop", ident="noop"), "127.0.0.1", 0, backlog=1024)
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

    import logging

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    asyncio.run(main())


class Server:
    """A server process and the port it listens on."""

    def __init__(self, cmd: list[str], env: dict[str, str], workdir: Path, port_file: Path | None = None) -> None:
        self.proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if port_file is None:
            assert self.proc.stderr is not None
            line = self.proc.stderr.readline().decode()
            if "listening on" not in line:
                raise SystemExit(f"server did not start: {line}{self.proc.stderr.read().decode()}")
            self.port = int(line.split("listening on ")[1].split(" ")[0].rsplit(":", 1)[1])
            threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        else:
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("noop server did not start")
                time.sleep(0.05)
            self.port = int(port_file.read_text())

    def rss_mb(self) -> float:
        """Resident memory of the server and all its descendants, in MiB."""
        pids, total = {self.proc.pid}, 0
        changed = True
        stats = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
                stats.append((int(stat.split("/")[2]), int(fields[1])))
            except (OSError, IndexError, ValueError):
                continue
        while changed:
            changed = False
            for pid, ppid in stats:
                if ppid in pids and pid not in pids:
                    pids.add(pid)
                    changed = True
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server and its descendants (children still running)."""
        tick = os.sysconf("SC_CLK_TCK")
        stats: dict[int, tuple[int, float]] = {}
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
                stats[int(stat.split("/")[2])] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
            except (OSError, IndexError, ValueError):
                continue
        pids, changed = {self.proc.pid}, True
        while changed:
            changed = False
            for pid, (ppid, _cpu) in stats.items():
                if ppid in pids and pid not in pids:
                    pids.add(pid)
                    changed = True
        return sum(stats[p][1] for p in pids if p in stats)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Backlog:
    """Counts stored and unprocessed messages without getting in the daemon's way.

    SQLite is read through a plain sqlite3 connection: a WAL reader takes no lock, whereas bouncd's engine
    begins every transaction with BEGIN IMMEDIATE (the write lock) and would compete with the daemon.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite: Any = None
        self.engine: Any = None
        if url.startswith("sqlite:///"):
            import sqlite3

            self.sqlite = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        else:
            from bouncd.db.session import make_engine

            self.engine = make_engine(url)

    def counts(self) -> tuple[int, int]:
        """(stored, pending)."""
        q_all, q_pending = "SELECT count(*) FROM messages", "SELECT count(*) FROM messages WHERE state = 'pending'"
        if self.sqlite is not None:
            return int(self.sqlite.execute(q_all).fetchone()[0]), int(self.sqlite.execute(q_pending).fetchone()[0])
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return int(conn.execute(text(q_all)).scalar_one()), int(conn.execute(text(q_pending)).scalar_one())

    def close(self) -> None:
        if self.sqlite is not None:
            self.sqlite.close()
        if self.engine is not None:
            self.engine.dispose()


@dataclass
class Result:
    """One target's numbers."""

    name: str
    load: Load
    stored: int | None = None
    drain_seconds: float | None = None
    processed_rate: float | None = None
    peak_mb: float = 0.0
    undrained: int = 0
    backlog_at_end: int | None = None  # stored but unprocessed when the load ended
    rss_samples: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0  # the server's processes, during the load

    @property
    def rate(self) -> float:
        return self.load.acked / self.load.seconds if self.load.seconds else 0.0


def run_target(name: str, server: Server, args: argparse.Namespace, url: str | None) -> Result:
    """Load one server, then (bouncd) check nothing was lost and wait for the backlog to drain."""
    peak = [server.rss_mb()]
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            peak.append(server.rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    chunks = 4
    load = Load()
    t_start = time.perf_counter()
    cpu_start = server.cpu_seconds()
    for i in range(chunks):  # four equal parts, so the memory can be read at each quarter of the run
        part = drive(server.port, args.messages // chunks, args.connections, f"{name}{i}", args.rate)
        load.acked += part.acked
        load.refused += part.refused
        load.errors += part.errors
        load.latencies += part.latencies
        load.seconds += part.seconds
        samples.append(server.rss_mb())
    result = Result(name, load, rss_samples=samples, cpu_seconds=server.cpu_seconds() - cpu_start)
    if url is not None:
        backlog = Backlog(url)
        total, pending = backlog.counts()
        result.stored = total
        result.backlog_at_end = pending
        t_end = time.perf_counter()
        while pending and not args.no_processing and time.perf_counter() - t_end < args.drain_timeout:
            time.sleep(0.1)
            total, pending = backlog.counts()
        backlog.close()
        if not args.no_processing:
            result.drain_seconds = time.perf_counter() - t_end
            result.processed_rate = (total - pending) / (time.perf_counter() - t_start)
            result.undrained = pending
    done.set()
    sampler.join()
    result.peak_mb = max(peak)
    return result


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def report(results: list[Result], args: argparse.Namespace) -> None:
    """Print one row per target and the ratios to the do-nothing handler."""
    noop = next((r for r in results if r.name == "noop"), None)
    pace = f"paced at {args.rate:.0f} msgs/s" if args.rate else "each sending as fast as it is answered"
    print(f"\nSMTP load: {args.messages} messages per target, {args.connections} concurrent connections ({pace}), "
          f"loopback, {os.cpu_count()} cores")  # fmt: skip
    head = f"{'target':<16} {'msgs/s':>8} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'250s':>7} {'lost':>5} " \
           f"{'backlog':>7} {'drain s':>8} {'proc/s':>7} {'cpu ms':>7} {'peak MiB':>9}  RSS by quarter (MiB)"  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in results:
        ratios = getattr(args, "ratios", {}).get(r.name) or ([r.rate / noop.rate] if noop and noop.rate else [])
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
        lost = "-" if r.stored is None else str(max(0, r.load.acked - r.stored))
        drain = "-" if r.drain_seconds is None else f"{r.drain_seconds:.1f}"
        backlog = "-" if r.backlog_at_end is None else str(r.backlog_at_end)
        proc = "-" if r.processed_rate is None else f"{r.processed_rate:.0f}"
        quarters = " ".join(f"{x:.0f}" for x in r.rss_samples)
        cpu = f"{r.cpu_seconds * 1000 / r.load.acked:.3f}" if r.load.acked else "-"
        print(f"{r.name:<16} {r.rate:>8.0f} {ratio:>6} {_pct(r.load.latencies, 50) * 1000:>7.1f} "
              f"{_pct(r.load.latencies, 99) * 1000:>7.1f} {r.load.acked:>7} {lost:>5} {backlog:>7} {drain:>8} {proc:>7} {cpu:>7} "
              f"{r.peak_mb:>9.0f}  {quarters}")  # fmt: skip
        if r.undrained:
            print(f"  ({r.undrained} messages still unprocessed after --drain-timeout {args.drain_timeout:.0f} s)")
        if r.load.refused or r.load.errors:
            print(f"  ({r.load.refused} replies other than 250, {r.load.errors} session errors)")
    print("\nratio: accepted msgs/s relative to the do-nothing aiosmtpd handler (target >= 0.70).")
    print("lost: messages answered 250 that are not in the database (must be 0).")
    print("backlog: messages stored but not yet processed when the load ended;")
    print("drain s: seconds after the load ended until every stored message was processed;")
    print("proc/s: messages processed per second from the start of the load until the backlog was empty.")
    print("cpu ms: CPU time of the server's processes (listener, processing) per accepted message, during the load.")
    if args.repeat > 1:
        print(f"each row: the median run by msgs/s of {args.repeat}; ratio: the median of each round's ratio (runs: "
              + "; ".join(f"{name} {' '.join(f'{x:.0f}' for x in rates)}" for name, rates in args.all_rates.items())
              + "; ratios: " + "; ".join(f"{name} {' '.join(f'{x:.2f}' for x in rs)}" for name, rs in args.ratios.items())
              + ")")


def _run_once(name: str, round_no: int, base: Path, env: dict[str, str], args: argparse.Namespace) -> Result | None:
    """Start one target on a fresh database, load it, stop it."""
    print(f"running {name} (round {round_no + 1}) ...", file=sys.stderr, flush=True)
    url: str | None = None
    with contextlib.ExitStack() as stack:
        if name == "noop":
            port_file = base / f"noop{round_no}.port"
            server = Server([sys.executable, __file__, "--serve-noop", str(port_file)], env, base, port_file)
        else:
            if name == "bouncd-sqlite":
                url = f"sqlite:///{base / f'bench{round_no}.sqlite3'}"
            else:
                if not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
                    print("  skipped: no PostgreSQL server binaries", file=sys.stderr)
                    return None
                url = stack.enter_context(temp_postgres())  # durable: fsync on
            cmd = [sys.executable, "-m", "bouncd", "serve", "--listen", "127.0.0.1:0", "--db", url,
                   "--bounce-domain", "bounces.example.org", "--workers", str(args.workers)]  # fmt: skip
            server = Server(cmd, env, base)
        try:
            return run_target(name, server, args, url)
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per target (default 20000)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent SMTP sessions (default 32)")
    parser.add_argument("--rate", type=float, help="send this many msgs/s in all instead of as fast as answered "
                        "(does processing keep pace with a steady stream? see the backlog column)")  # fmt: skip
    parser.add_argument("--only", action="append", choices=("noop", "bouncd-sqlite", "bouncd-postgres"))
    parser.add_argument("--workers", type=int, default=1, help="bouncd --workers (default 1)")
    parser.add_argument("--no-processing", action="store_true", help="run bouncd without its processing loop")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="longest wait for the backlog (s)")
    parser.add_argument("--repeat", type=int, default=1, help="run every target N times, report the median (default 1)")
    parser.add_argument("--log-level", default="info", help="bouncd's log level (default info, as deployed)")
    parser.add_argument("--serve-noop", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_noop:
        _noop_server(args.serve_noop)
        return 0
    targets = args.only or ["noop", "bouncd-sqlite", "bouncd-postgres"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BOUNCD_LOG_LEVEL": args.log_level, "BOUNCD_LOG_FORMAT": "json"}
    env.pop("BOUNCD_CONFIG", None)
    if args.no_processing:
        env["BOUNCD_PROCESSING_PROCESSES"] = "0"
    runs: dict[str, list[Result]] = {name: [] for name in targets}
    base = Path(tempfile.mkdtemp(prefix="bouncd-bench-"))
    try:
        for round_no in range(max(1, args.repeat)):
            for name in targets:
                result = _run_once(name, round_no, base, env, args)
                if result is not None:
                    runs[name].append(result)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    results = []
    for rs in runs.values():
        if rs:
            results.append(sorted(rs, key=lambda r: r.rate)[(len(rs) - 1) // 2])
    args.all_rates = {name: [r.rate for r in rs] for name, rs in runs.items() if rs}
    # The ratio of each round is taken against that round's do-nothing run (the load of a shared machine
    # drifts between rounds), and the median of those is reported.
    noop_runs = runs.get("noop", [])
    args.ratios = {
        name: [r.rate / n.rate for r, n in zip(rs, noop_runs, strict=False) if n.rate]
        for name, rs in runs.items()
        if rs and noop_runs
    }
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
