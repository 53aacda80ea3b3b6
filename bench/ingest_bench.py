"""Messages per second for ``bouncd ingest`` of a directory, into SQLite and PostgreSQL.

Each message goes through the same unit of work as ``bouncd ingest FILE`` (store and commit, then
analyze -> events -> policy -> trail in one transaction), in one process, without interpreter start-up.
Also measured: storing only, 100 messages per commit (what the SMTP listener's group commit does before
its 250s), then the processing loop's ``process_pending`` draining that backlog, ``--batch`` messages per
transaction (issue 4: it must keep up with >= 1,000 msgs/s).

    .venv/bin/python bench/ingest_bench.py                      # ../shared/corpus/eml, SQLite + a temp PostgreSQL
    .venv/bin/python bench/ingest_bench.py --dir fixtures/dsn --copies 5 --pg-url postgresql://u@h/db
    .venv/bin/python bench/ingest_bench.py --no-ingest --copies 10 --batch 1   # drain only, one message per commit
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from bouncd.config import Settings
from bouncd.db import repo, upgrade
from bouncd.db.session import make_engine, transaction
from bouncd.ingest import ingest_message, process_pending
from bouncd.logs import configure_logging
from bouncd.records import Inbound

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "eml"


@contextmanager
def temp_postgres() -> Iterator[str]:
    """Start a throw-away PostgreSQL (as the postgres user when root); yield its URL."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise SystemExit("no PostgreSQL server binaries; pass --pg-url or --no-pg")
    bindir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="bouncd-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    run = lambda *c: subprocess.run([*prefix, *c], check=True, capture_output=True, cwd=base)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
    # Durable settings (fsync on): the numbers should mean what production would see.
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c shared_buffers=256MB"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def load(directory: Path, copies: int) -> list[bytes]:
    """Every *.eml in the directory, ``copies`` times (each copy made unique so nothing is a duplicate)."""
    files = sorted(directory.glob("*.eml"))
    if not files:
        raise SystemExit(f"no *.eml in {directory}")
    raws = [f.read_bytes() for f in files]
    return [b"X-Bench-Copy: %d\r\n" % i + raw for i in range(copies) for raw in raws]


def reset(url: str) -> None:
    """Empty the database's bouncd tables (the trail is append-only, so drop and migrate again)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    if engine.dialect.name == "sqlite" and engine.url.database:
        for suffix in ("", "-wal", "-shm"):
            Path(engine.url.database + suffix).unlink(missing_ok=True)


def bench(url: str, raws: list[bytes], *, batch: int, ingest: bool = True) -> dict[str, float]:
    """Measure one backend; returns rates in messages per second."""
    settings = Settings()
    out: dict[str, float] = {}

    if ingest:
        reset(url)
        engine = make_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        for raw in raws:
            inbound = Inbound(raw=raw, received_at=datetime.now(UTC), rcpt_tos=("bounces@example.org",), protocol="cli")
            ingest_message(engine, settings, inbound)
        out["ingest (store+process, 2 commits/msg)"] = len(raws) / (time.perf_counter() - started)
        engine.dispose()

    reset(url)
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    for start in range(0, len(raws), 100):  # the listener's group commit: many messages, one commit
        with transaction(engine) as s:
            now = datetime.now(UTC)
            chunk = raws[start : start + 100]
            repo.store_inbound_batch(
                s, [Inbound(raw=r, received_at=now, rcpt_tos=("bounces@example.org",), protocol="smtp") for r in chunk]
            )
    out["store only, 100 msgs/commit"] = len(raws) / (time.perf_counter() - started)
    started = time.perf_counter()
    done = 0
    while n := process_pending(engine, settings, limit=len(raws), batch=batch):
        done += n
    elapsed = time.perf_counter() - started
    with transaction(engine, readonly=True) as s:
        counts = repo.stats(s)
    if counts["backlog"]["count"] or done != counts["messages"]:  # the corpus holds a few identical files
        raise SystemExit(f"process_pending handled {done} of {counts['messages']} stored, {counts['backlog']} left")
    out[f"process_pending drain ({batch}/commit)"] = done / elapsed
    engine.dispose()
    return out


def main() -> None:
    """Run the benchmark and print one line per measurement."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--copies", type=int, default=2, help="ingest the directory this many times")
    ap.add_argument("--sqlite", default="", help="SQLite file (default: a temp file)")
    ap.add_argument("--pg-url", default="", help="existing PostgreSQL database (it is emptied!)")
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--no-ingest", action="store_true", help="skip the one-message-at-a-time ingest run")
    ap.add_argument("--batch", type=int, default=Settings().processing.batch, help="messages per processing transaction")
    args = ap.parse_args()
    configure_logging("console", "warning", sys.stderr)
    raws = load(args.dir, args.copies)
    print(f"{len(raws)} messages from {args.dir} ({sum(map(len, raws)) / len(raws) / 1024:.1f} KiB average)")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{args.sqlite or Path(tmp) / 'bench.sqlite3'}"
        for name, rate in bench(sqlite_url, raws, batch=args.batch, ingest=not args.no_ingest).items():
            print(f"sqlite      {name:<40} {rate:8.1f} msg/s")
    if args.no_pg:
        return
    if args.pg_url:
        results = bench(args.pg_url, raws, batch=args.batch, ingest=not args.no_ingest)
    else:
        with temp_postgres() as url:
            results = bench(url, raws, batch=args.batch, ingest=not args.no_ingest)
    for name, rate in results.items():
        print(f"postgresql  {name:<40} {rate:8.1f} msg/s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
