"""Real concurrency: separate processes recording bounces for one contact at the same moment raise DNC once."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from bouncd.config import Settings
from bouncd.db.session import make_engine, transaction
from bouncd.ingest import ingest_message, process_pending
from bouncd.records import Inbound
from tests.conftest import HARD, MAILBOX_FULL, dsn_for

DAY0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
WORKERS = 4


def _ingest_worker(url: str, raws: list[bytes], barrier: Any, out: Any) -> None:
    """Child process: wait for the others, then ingest its messages as fast as it can."""
    engine = make_engine(url)
    settings = Settings()
    barrier.wait(timeout=60)
    raised = 0
    for raw in raws:
        inbound = Inbound(raw=raw, received_at=datetime.now(UTC), rcpt_tos=("bounces@example.org",), protocol="cli")
        raised += len(ingest_message(engine, settings, inbound).dnc_raised)
    out.put(raised)
    engine.dispose()


def _process_worker(url: str, barrier: Any, out: Any) -> None:
    """Child process: one processing loop sharing the queue with the others."""
    engine = make_engine(url)
    barrier.wait(timeout=60)
    out.put(process_pending(engine, Settings(), limit=1000))
    engine.dispose()


def _run(target: Any, args_per_worker: list[tuple[Any, ...]]) -> list[int]:
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no connection shared across a fork
    barrier, out = ctx.Barrier(len(args_per_worker)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, barrier, out)) for a in args_per_worker]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def _on_entries(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT c.address, count(*) FROM dnc_trail t JOIN contacts c ON c.id = t.contact_id "
                 "WHERE t.action = 'on' GROUP BY c.address")
        ).all()
    return {a: int(n) for a, n in rows}


def test_simultaneous_hard_bounces_for_one_contact_raise_dnc_exactly_once(engine: Engine, db_url: str) -> None:
    """Four processes each ingest different hard bounces for the same three contacts at once: one DNC-on each."""
    contacts = [f"shared{i}@example.com" for i in range(3)]
    per_worker = [
        [dsn_for(HARD, c, DAY0 + timedelta(hours=w), original_id=f"<w{w}-{c}>") for c in contacts] for w in range(WORKERS)
    ]
    raised = _run(_ingest_worker, [(db_url, raws) for raws in per_worker])
    assert sum(raised) == len(contacts)
    assert _on_entries(engine) == dict.fromkeys(contacts, 1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bounce_events")).scalar_one() == WORKERS * len(contacts)


def test_processing_loops_share_the_queue_without_double_work(engine: Engine, db_url: str) -> None:
    """Several processing processes drain one queue: every message handled once, soft threshold crossed once."""
    raws = [dsn_for(MAILBOX_FULL, "full@example.com", DAY0 + timedelta(days=d)) for d in range(8)]
    raws += [dsn_for(HARD, f"h{i}@example.com", DAY0) for i in range(20)]
    from bouncd.db import repo

    with transaction(engine) as s:
        repo.store_inbound(s, [Inbound(raw=r, received_at=datetime.now(UTC), protocol="cli") for r in raws])
    handled = _run(_process_worker, [(db_url,) for _ in range(WORKERS)])
    assert sum(handled) == len(raws)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages WHERE state = 'processed'")).scalar_one() == len(raws)
        assert conn.execute(text("SELECT count(*) FROM bounce_events")).scalar_one() == len(raws)
    on = _on_entries(engine)
    assert on["full@example.com"] == 1 and all(on[f"h{i}@example.com"] == 1 for i in range(20))


def _batch_worker(url: str, batch: int, barrier: Any, out: Any) -> None:
    """Child process: drain the queue in small batches (many batches share contacts with other processes')."""
    engine = make_engine(url)
    barrier.wait(timeout=60)
    out.put(process_pending(engine, Settings(), limit=10_000, batch=batch))
    engine.dispose()


def test_batches_sharing_contacts_neither_deadlock_nor_double_a_dnc(engine: Engine, db_url: str) -> None:
    """Four processes drain 120 messages for 6 contacts in batches of 7: every batch locks contacts that
    other processes' batches hold too. Nothing fails or waits forever, and each contact is DNC exactly once."""
    contacts = [f"c{i}@example.com" for i in range(6)]
    raws = []
    for n in range(120):
        who = contacts[(n * 5) % len(contacts)]  # consecutive messages (one batch) name different contacts
        kind = HARD if n % 4 == 0 else MAILBOX_FULL
        # Mailbox-full contacts see 5 distinct days among their 20 messages: the threshold is crossed mid-way.
        arrival = DAY0 - timedelta(days=30) + timedelta(days=n % 30, minutes=n)
        raws.append(dsn_for(kind, who, arrival, original_id=f"<m{n}@example.org>"))
    from bouncd.db import repo

    with transaction(engine) as s:
        repo.store_inbound(s, [Inbound(raw=r, received_at=datetime.now(UTC), protocol="cli") for r in raws])
    handled = _run(_batch_worker, [(db_url, 7) for _ in range(WORKERS)])
    assert sum(handled) == len(raws)
    with engine.connect() as conn:
        states = dict(conn.execute(text("SELECT state, count(*) FROM messages GROUP BY state")).all())
        assert states == {"processed": len(raws)}
        assert conn.execute(text("SELECT count(*) FROM bounce_events")).scalar_one() == len(raws)
    assert _on_entries(engine) == dict.fromkeys(contacts, 1)
