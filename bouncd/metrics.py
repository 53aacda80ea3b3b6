"""Prometheus metrics (prometheus-client) and ``/healthz``, on an optional HTTP listener (loopback by default).

Two sources, read at scrape time in the HTTP thread (never on the event loop):

- the listener of this process: SMTP outcomes, open and refused sessions, commit batch sizes;
- the database, so the numbers hold across worker processes, processing processes and hosts: the backlog
  (count and age of the oldest unprocessed message), failed messages, and — counted since this daemon
  started, read incrementally by row id — bounces by kind/reason/hardness, DNC changes by source, and
  the processing latency (receipt to recorded verdict).

``/healthz`` answers 200 when the database answers ``SELECT 1``, else 503 with the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from bouncd.config import Settings
from bouncd.db.models import BounceEvent, Message, TrailEntry
from bouncd.db.session import describe_db_error, make_engine

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class ListenerView(Protocol):
    """What the metrics read from a running listener (bouncd.daemon.Listener)."""

    handler: Any
    gate: Any
    committer: Any


class _Histogram:
    """Cumulative bucket counts kept here, because the observations arrive as plain numbers."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += value

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        cumulative, running = [], 0
        for bound, n in zip([*map(str, self.buckets), "+Inf"], self.counts, strict=True):
            running += n
            cumulative.append((bound, running))
        return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=self.total)


class BouncdCollector:
    """A prometheus-client custom collector over the listener and the database."""

    def __init__(self, engine: Engine, listener: ListenerView | None = None) -> None:
        self.engine = engine
        self.listener = listener
        self._lock = threading.Lock()
        self._batches = _Histogram(BATCH_BUCKETS)
        self._latency = _Histogram(LATENCY_BUCKETS)
        self._bounces: dict[tuple[str, str, str], int] = {}
        self._dnc: dict[tuple[str, str], int] = {}
        self._last_event = self._last_trail = -1  # -1: not read yet; counting starts at the newest row
        try:  # start counting now rather than at the first scrape; a database that is down can wait
            with engine.connect() as conn:
                self._read_new_rows(conn)
        except SQLAlchemyError:
            pass

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family (prometheus-client calls this on each scrape)."""
        with self._lock:
            yield from self._listener_metrics()
            yield from self._db_metrics()

    def _listener_metrics(self) -> Iterable[Metric]:
        if self.listener is None:
            return
        outcomes = CounterMetricFamily("bouncd_smtp_messages", "Messages after DATA, by outcome.", labels=["outcome"])
        for outcome in ("accepted", "tempfail", "error"):
            outcomes.add_metric([outcome], self.listener.handler.outcomes.get(outcome, 0))
        yield outcomes
        yield GaugeMetricFamily(
            "bouncd_smtp_sessions_open", "SMTP/LMTP sessions now open.", value=self.listener.gate.open_sessions
        )
        yield CounterMetricFamily(
            "bouncd_smtp_sessions_refused", "Sessions refused (allowlist, limit).", value=self.listener.gate.refused
        )
        yield GaugeMetricFamily(
            "bouncd_listener_load",
            "Share of the last 50 ms the listener's event loop was on the CPU (processing steps aside at 0.5).",
            value=float(getattr(self.listener, "load", 0.0)),
        )
        stats = self.listener.committer.stats
        sizes, stats.batch_sizes = stats.batch_sizes, []
        for n in sizes:
            self._batches.observe(n)
        yield self._batches.family("bouncd_commit_batch_size", "Messages per group commit.")
        yield CounterMetricFamily("bouncd_commit_failures", "Group commits that failed (answered 451).", value=stats.failures)

    def _db_metrics(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("bouncd_database_up", "1 when the last scrape could read the database.")
        try:
            with self.engine.connect() as conn:
                pending, oldest = conn.execute(
                    select(func.count(), func.min(Message.received_at)).where(Message.state == "pending")
                ).one()
                failed = conn.execute(select(func.count()).where(Message.state == "failed")).scalar_one()
                self._read_new_rows(conn)
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("bouncd_backlog_messages", "Stored messages not processed yet.", value=pending)
        age = 0.0
        if oldest is not None:
            oldest = oldest if isinstance(oldest, datetime) else datetime.fromisoformat(str(oldest))
            age = max(0.0, (datetime.now(UTC) - oldest.replace(tzinfo=oldest.tzinfo or UTC)).total_seconds())
        yield GaugeMetricFamily("bouncd_backlog_oldest_seconds", "Age of the oldest unprocessed message.", value=age)
        yield GaugeMetricFamily("bouncd_messages_failed", "Messages whose processing failed (for review).", value=failed)
        bounces = CounterMetricFamily(
            "bouncd_bounces", "Recorded recipient results since start.", labels=["kind", "reason", "hard"]
        )
        for key, n in sorted(self._bounces.items()):
            bounces.add_metric(list(key), n)
        yield bounces
        dnc = CounterMetricFamily("bouncd_dnc_changes", "DNC trail entries since start.", labels=["source", "action"])
        for key2, n in sorted(self._dnc.items()):
            dnc.add_metric(list(key2), n)
        yield dnc
        yield self._latency.family("bouncd_processing_latency_seconds", "Receipt to recorded verdict, per result.")

    def _read_new_rows(self, conn: Any) -> None:
        if self._last_event < 0:
            self._last_event = int(conn.execute(select(func.coalesce(func.max(BounceEvent.id), 0))).scalar_one())
            self._last_trail = int(conn.execute(select(func.coalesce(func.max(TrailEntry.id), 0))).scalar_one())
            return
        rows = conn.execute(
            select(
                BounceEvent.id,
                BounceEvent.kind,
                BounceEvent.reason,
                BounceEvent.hard,
                BounceEvent.recorded_at,
                Message.received_at,
            )
            .join(Message, Message.id == BounceEvent.message_id)
            .where(BounceEvent.id > self._last_event)
            .order_by(BounceEvent.id)
            .limit(100_000)
        ).all()
        for ev_id, kind, reason, hard, recorded, received in rows:
            key = (str(kind), str(reason), "true" if hard else "false")
            self._bounces[key] = self._bounces.get(key, 0) + 1
            if recorded is not None and received is not None:
                self._latency.observe(max(0.0, (recorded - received).total_seconds()))
            self._last_event = int(ev_id)
        trail = conn.execute(
            select(TrailEntry.id, TrailEntry.source, TrailEntry.action)
            .where(TrailEntry.id > self._last_trail)
            .order_by(TrailEntry.id)
        ).all()
        for tr_id, source, action in trail:
            key2 = (str(source), str(action))
            self._dnc[key2] = self._dnc.get(key2, 0) + 1
            self._last_trail = int(tr_id)


def health(engine: Engine) -> tuple[bool, str]:
    """(ok, words): whether the database answers."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return False, describe_db_error(exc)
    return True, "ok"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not events worth a log line."""


class MetricsServer:
    """The HTTP listener: /metrics (Prometheus text format) and /healthz, in a daemon thread."""

    def __init__(self, settings: Settings, listener: ListenerView | None = None, engine: Engine | None = None) -> None:
        self.engine = engine or make_engine(settings.database.url)
        self.registry = CollectorRegistry()
        self.collector = BouncdCollector(self.engine, listener)
        self.registry.register(self.collector)
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                ok, words = health(self.engine)
                start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
                return [(words + "\n").encode()]
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]

        host, _, port = settings.metrics.listen.rpartition(":")
        self.httpd = make_server(
            host.strip("[]") or "127.0.0.1", int(port), app, ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self.address = (str(self.httpd.server_address[0]), int(self.httpd.server_address[1]))
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="bouncd-metrics", daemon=True)
        self.thread.start()

    def shutdown(self) -> None:
        """Stop the HTTP listener."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.engine.dispose()


def start_metrics_server(settings: Settings, listener: ListenerView | None = None) -> MetricsServer:
    """Start the metrics/health listener configured in [metrics] listen."""
    return MetricsServer(settings, listener)
