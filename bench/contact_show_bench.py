"""Time of ``bouncd contact show`` with 1,000,000 contacts and 5,000,000 bounce events in the database.

The data is generated inside the database with bulk INSERT ... SELECT (a recursive CTE on SQLite,
generate_series on PostgreSQL), then ``contact show --json`` runs in-process for random addresses.
It must stay interactive (tens of milliseconds): every lookup is an index seek.

    .venv/bin/python bench/contact_show_bench.py                       # full size, SQLite in /tmp
    .venv/bin/python bench/contact_show_bench.py --contacts 100000     # quick run (5 events per contact)
    .venv/bin/python bench/contact_show_bench.py --postgres            # the same on a temp PostgreSQL
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, text

from bouncd.cli import main as cli_main
from bouncd.db import upgrade
from bouncd.db.session import make_engine
from bouncd.logs import configure_logging

sys.path.insert(0, str(Path(__file__).parent))
from ingest_bench import temp_postgres

REASONS = "'mailboxfull','userunknown','blocked','spamdetected','expired','suspend','policyviolation','hostunknown'"


def numbers(engine: Engine, n: int) -> str:
    """SQL for a set of rows ``i`` = 1..n on this backend."""
    if engine.dialect.name == "postgresql":
        return f"(SELECT generate_series(1, {n}) AS i) s"
    return f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) s"


def fill(engine: Engine, contacts: int, events_per_contact: int) -> None:
    """Bulk-generate contacts, one message, events spread over contacts and a DNC trail for 10% of contacts."""
    ts = "now()" if engine.dialect.name == "postgresql" else "datetime('now')"
    ago = (
        "now() - make_interval(days => (i % 90))"
        if engine.dialect.name == "postgresql"
        else "datetime('now', '-' || (i % 90) || ' days')"
    )
    true = "true" if engine.dialect.name == "postgresql" else "1"
    false = "false" if engine.dialect.name == "postgresql" else "0"
    reasons = f"(ARRAY[{REASONS}])[(i % 8) + 1]" if engine.dialect.name == "postgresql" else (
        "CASE i % 8 " + " ".join(f"WHEN {k} THEN {r}" for k, r in enumerate(REASONS.split(","))) + " END"
    )
    pg = engine.dialect.name == "postgresql"
    blob = "'\\x00'" if pg else "X'00'"
    cid = f"(((i - 1) % {contacts}) + 1)"
    address = f"'user' || {cid} || '@example' || ({cid} % 1000) || '.com'"
    steps = [
        (
            "contacts",
            "INSERT INTO contacts (address, dnc, trail_seq, created_at) "
            f"SELECT 'user' || i || '@example' || (i % 1000) || '.com', {false}, 0, {ts} FROM {numbers(engine, contacts)}",
        ),
        (
            "message",
            "INSERT INTO messages (sha256, raw_z, raw_size, rcpt_tos, protocol, received_at, state, attempts) "
            f"VALUES ('bench', {blob}, 1, '', 'cli', {ts}, 'processed', 1)",
        ),
        (
            "bounce_events",
            "INSERT INTO bounce_events (message_id, contact_id, recipient, kind, action, hard, reason, status, "
            "diagnostic, rule, evidence, arrived_at, recorded_at, signed, counted, policy_rule, superseded) "
            f"SELECT (SELECT min(id) FROM messages), {cid}, {address}, 'bounce', 'failed', {false}, {reasons}, '5.2.2', "
            f"'552 5.2.2 mailbox over quota, bench row ' || i, 'text.mailboxfull', 'over quota', {ago}, {ts}, "
            f"{false}, {true}, 'policy.soft.below_threshold', {false} FROM {numbers(engine, contacts * events_per_contact)}",
        ),
        (
            "dnc_trail",
            "INSERT INTO dnc_trail (contact_id, seq, action, source, actor, rule, note, at) "
            f"SELECT i, 1, 'on', 'manual', 'bench', NULL, 'bench', {ts} FROM {numbers(engine, contacts)} WHERE i % 10 = 0",
        ),
        (
            "contacts dnc",
            f"UPDATE contacts SET dnc = {true}, dnc_since = {ts}, dnc_source = 'manual', trail_seq = 1 WHERE id % 10 = 0",
        ),
    ]
    for name, sql in steps:
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(sql))
        print(f"  generated {name:<14} in {time.perf_counter() - started:7.1f} s", flush=True)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def time_show(url: str, contacts: int, runs: int) -> list[float]:
    """Milliseconds per ``bouncd contact show ADDRESS --json`` (in-process), random contacts."""
    rng = random.Random(7)
    timings = []
    for _ in range(runs):
        i = rng.randint(1, contacts)
        sink = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(sink):
            code = cli_main(["contact", "show", f"user{i}@example{i % 1000}.com", "--json", "--db", url])
        timings.append((time.perf_counter() - started) * 1000)
        assert code == 0 and '"bounces"' in sink.getvalue()
    return timings


def run(url: str, contacts: int, events_per_contact: int, runs: int) -> None:
    """Generate (if empty) and time."""
    engine = make_engine(url)
    upgrade(engine)
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM contacts")).scalar_one()
    if have != contacts:
        if have:
            raise SystemExit(f"{url} holds {have} contacts, not {contacts}: use an empty database")
        print(f"generating {contacts:,} contacts and {contacts * events_per_contact:,} bounce events ...", flush=True)
        fill(engine, contacts, events_per_contact)
    engine.dispose()
    with engine.connect() as conn:
        n_events = conn.execute(text("SELECT count(*) FROM bounce_events")).scalar_one()
    t = sorted(time_show(url, contacts, runs))
    print(f"{engine.dialect.name}: {contacts:,} contacts, {n_events:,} bounce events: contact show --json over {runs} runs: "
          f"median {statistics.median(t):.1f} ms, p95 {t[int(len(t) * 0.95) - 1]:.1f} ms, max {t[-1]:.1f} ms")


def main() -> None:
    """Parse arguments and run."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--contacts", type=int, default=1_000_000)
    ap.add_argument("--events-per-contact", type=int, default=5)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--sqlite", default="", help="SQLite file (kept, reused when it already holds the data)")
    ap.add_argument("--postgres", action="store_true", help="also measure on a temp PostgreSQL server")
    args = ap.parse_args()
    configure_logging("console", "warning", sys.stderr)
    path = args.sqlite or str(Path(tempfile.gettempdir()) / f"bouncd-bench-{args.contacts}.sqlite3")
    run(f"sqlite:///{path}", args.contacts, args.events_per_contact, args.runs)
    if args.postgres:
        with temp_postgres() as url:
            run(url, args.contacts, args.events_per_contact, args.runs)


if __name__ == "__main__":
    main()
