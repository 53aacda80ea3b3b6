"""Command line: ``build_parser()`` and ``main(argv) -> int``. Thin: it calls the same functions as the daemon.

Exit codes: 0 ok, 1 operational error, 2 usage error; pipe mode exits 75 (EX_TEMPFAIL) when the MTA
should retry.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import Engine

from bouncd import __version__
from bouncd.analyze import analyze
from bouncd.client import apply_dnc, require_address
from bouncd.config import Settings, load_settings
from bouncd.daemon import add_commands as add_daemon_commands  # serve, config check, verp encode, import
from bouncd.db import current_revision, head_revision, repo, upgrade
from bouncd.db.models import BounceEvent, TrailEntry
from bouncd.db.session import make_engine, transaction
from bouncd.errors import BouncdError, ConfigError, NotFound, StoreError, UsageError
from bouncd.ingest import ingest_message, reprocess
from bouncd.logs import configure_logging
from bouncd.records import Inbound, Kind, Report

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="bouncd", description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"bouncd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # Options every database command takes (``parents=[common]``).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", help="database URL (default: [database] url, or BOUNCD_DATABASE_URL)")
    common.add_argument("--config", metavar="PATH", help="bouncd.toml to read (default: BOUNCD_CONFIG, config/bouncd.toml)")
    for register in COMMAND_GROUPS:
        register(sub, common)
    return parser


def add_parse_command(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """``bouncd parse``."""
    p = sub.add_parser("parse", help="analyze bounce messages and print one row per affected recipient")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, directories of *.eml, or - for stdin")
    p.add_argument("--format", choices=("jsonl", "text"), default="jsonl")
    p.set_defaults(func=cmd_parse)


def main(argv: list[str] | None = None) -> int:
    """Run one command; map errors to exit codes with a one-line message, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # Commands print results on stdout; events go to stderr, quiet unless BOUNCD_LOG_LEVEL asks (serve reconfigures).
    configure_logging("auto", os.environ.get("BOUNCD_LOG_LEVEL", "warning"), sys.stderr)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"bouncd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BouncdError as exc:
        print(f"bouncd: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


# --- parse ---------------------------------------------------------------------------------------

def iter_inputs(paths: list[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) for every input: stdin, files, and ``*.eml`` in directories (sorted)."""
    for p in paths:
        if p == "-":
            yield "-", sys.stdin.buffer.read()
            continue
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.glob("*.eml")):
                yield f.name, f.read_bytes()
        elif path.is_file():
            yield path.name, path.read_bytes()
        else:
            raise UsageError(f"no such file or directory: {p}")


def report_rows(name: str, report: Report) -> list[dict[str, Any]]:
    """JSONL rows of one analysed message."""
    return [
        {
            "file": name,
            "kind": str(report.kind),
            "recipient": r.recipient,
            "hard": r.hard,
            "reason": r.reason,
            "status": r.status,
            "reply_code": r.reply_code,
            "action": r.action,
            "diagnostic": r.diagnostic,
            "remote_mta": r.remote_mta,
            "rule": r.rule,
            "evidence": r.evidence,
            "detector": report.detector,
            "original_message_id": report.original_message_id,
        }
        for r in report.results
    ]


def print_text(name: str, report: Report, out: TextIO) -> None:
    """A person-readable account of one message."""
    out.write(f"{name}: {report.kind} (detector {report.detector})\n")
    if report.error:
        out.write(f"  error: {report.error}\n")
    if report.original_message_id:
        out.write(f"  original Message-ID: {report.original_message_id}\n")
    for r in report.results:
        verdict = "HARD" if r.hard else "soft"
        out.write(f"  {r.recipient or '(recipient unknown)'}: {verdict} {r.reason}\n")
        out.write(f"    status {r.status or '-'}  reply {r.reply_code or '-'}  action {r.action or '-'}\n")
        if r.diagnostic:
            out.write(f"    server said: {r.diagnostic[:500]}\n")
        out.write(f"    decided by rule {r.rule}" + (f" on {r.evidence!r}" if r.evidence else "") + "\n")


def cmd_parse(args: argparse.Namespace) -> int:
    """``bouncd parse``."""
    out = sys.stdout
    for name, raw in iter_inputs(args.paths):
        report = analyze(raw)
        if args.format == "text":
            print_text(name, report, out)
            continue
        if report.kind == Kind.UNKNOWN or not report.results:
            why = report.error or "no bounce, complaint, auto-reply or delivery result found"
            print(f"bouncd: {name}: {report.kind}: {why}", file=sys.stderr)
            continue
        for row in report_rows(name, report):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return EXIT_OK


# --- database commands ---------------------------------------------------------------------------


def add_store_commands(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """contact, dnc, bounces, stats, messages, db, ingest, reprocess."""
    contact = sub.add_parser("contact", help="look at one contact").add_subparsers(dest="contact_cmd", metavar="ACTION")
    contact.required = True
    p = contact.add_parser("show", parents=[common], help="DNC state, the full trail with evidence, recent bounces")
    p.add_argument("address")
    p.add_argument("--bounces", type=int, default=20, metavar="N", help="recent bounces to show (default 20)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_contact_show)

    dnc = sub.add_parser("dnc", help="switch Do Not Contact on or off, list DNC contacts").add_subparsers(
        dest="dnc_cmd", metavar="ACTION"
    )
    dnc.required = True
    for action in ("on", "off"):
        p = dnc.add_parser(action, parents=[common], help=f"switch DNC {action} (writes a trail entry)")
        p.add_argument("address")
        p.add_argument("--note", required=True, help="why (goes into the trail)")
        p.add_argument("--actor", default=os.environ.get("SUDO_USER") or os.environ.get("USER") or "admin")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_dnc_set, on=action == "on")
    p = dnc.add_parser("list", parents=[common], help="contacts currently DNC, newest first")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dnc_list)

    bounces = sub.add_parser("bounces", help="bounce events").add_subparsers(dest="bounces_cmd", metavar="ACTION")
    bounces.required = True
    p = bounces.add_parser("list", parents=[common], help="bounce events, newest first")
    p.add_argument("--since", type=parse_when, help="YYYY-MM-DD, ISO time, or Nd (N days ago)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--hard", dest="hard", action="store_true", default=None)
    group.add_argument("--soft", dest="hard", action="store_false")
    p.add_argument("--reason")
    p.add_argument("--contact", metavar="ADDRESS")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bounces_list)

    p = sub.add_parser("stats", parents=[common], help="counts by kind, reason and day")
    p.add_argument("--since", type=parse_when)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    messages = sub.add_parser("messages", help="stored messages").add_subparsers(dest="messages_cmd", metavar="ACTION")
    messages.required = True
    p = messages.add_parser("show", parents=[common], help="one stored message: envelope, outcome, events")
    p.add_argument("id", type=int)
    p.add_argument("--raw", action="store_true", help="print the raw message exactly as received")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_messages_show)

    db = sub.add_parser("db", help="database administration").add_subparsers(dest="db_cmd", metavar="ACTION")
    db.required = True
    p = db.add_parser("upgrade", parents=[common], help="apply the schema migrations (Alembic upgrade head)")
    p.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("ingest", parents=[common], help="store and process one message (pipe mode: -)")
    p.add_argument("path", metavar="FILE|-")
    p.add_argument("--received-at", type=parse_when, help="arrival time to count (default: the report's Arrival-Date, Date)")
    p.add_argument("--rcpt", help="envelope recipient, e.g. the signed return path (default: $ORIGINAL_RECIPIENT, $RECIPIENT)")
    p.add_argument("--mail-from", help="envelope sender (default: $SENDER)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("reprocess", parents=[common], help="re-run stored messages through the current rules")
    p.add_argument("--since", type=parse_when, help="only messages received since then")
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_reprocess)


# Each group adds its subcommands; other modules append theirs here (one line each).
COMMAND_GROUPS: list[Callable[[Subparsers, argparse.ArgumentParser], None]] = [
    add_parse_command,
    add_store_commands,
    add_daemon_commands,
]


def parse_when(text: str) -> datetime:
    """``YYYY-MM-DD``, an ISO 8601 time (UTC when no offset), or ``Nd`` for N days ago."""
    t = text.strip()
    if t.endswith("d") and t[:-1].isdigit():
        return datetime.now(UTC) - timedelta(days=int(t[:-1]))
    try:
        when = datetime.fromisoformat(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or time: {text!r} (use YYYY-MM-DD, ISO 8601 or Nd)") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def open_store(args: argparse.Namespace) -> tuple[Settings, Engine]:
    """Settings and an engine on ``--db`` (else the configured database); an empty SQLite file gets the schema."""
    settings = load_settings(getattr(args, "config", None))
    engine = make_engine(getattr(args, "db", None) or settings.database.url)
    current, head = current_revision(engine), head_revision()
    if current is None and engine.dialect.name == "sqlite":
        upgrade(engine)  # the embedded default works out of the box
    elif current is None:
        # A shared server database is never changed behind the operator's back (it may be the wrong one).
        raise StoreError("database has no bouncd schema: run `bouncd db upgrade` first")
    elif current != head:
        raise StoreError(f"database schema is at {current}, this bouncd needs {head}: run `bouncd db upgrade`")
    return settings, engine


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text``."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    elif text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def event_dict(e: BounceEvent) -> dict[str, Any]:
    """JSON form of one bounce event."""
    return {
        "id": e.id,
        "message_id": e.message_id,
        "recipient": e.recipient,
        "kind": e.kind,
        "action": e.action,
        "arrived_at": _iso(e.arrived_at),
        "hard": e.hard,
        "reason": e.reason,
        "status": e.status,
        "reply_code": e.reply_code,
        "diagnostic": e.diagnostic,
        "remote_mta": e.remote_mta,
        "rule": e.rule,
        "evidence": e.evidence,
        "original_message_id": e.original_message_id,
        "signed": e.signed,
        "counted": e.counted,
        "policy_rule": e.policy_rule,
    }


def trail_dict(t: TrailEntry, e: BounceEvent | None) -> dict[str, Any]:
    """JSON form of one trail entry with its evidence."""
    return {
        "seq": t.seq,
        "action": t.action,
        "source": t.source,
        "actor": t.actor,
        "at": _iso(t.at),
        "rule": t.rule,
        "policy_rule": t.policy_rule,
        "note": t.note,
        "status": e.status if e else None,
        "diagnostic": e.diagnostic if e else None,
        "reason": e.reason if e else None,
        "evidence": e.evidence if e else None,
        "bounce_event_id": t.bounce_event_id,
        "message_id": e.message_id if e else None,
    }


def _event_line(e: BounceEvent) -> str:
    verdict = "HARD" if e.hard else "soft"
    counted = " counted" if e.counted else ""
    return (
        f"  {_iso(e.arrived_at)}  {e.kind} {verdict} {e.reason} {e.status or '-'}  rule {e.rule}"
        f"  policy {e.policy_rule}{counted}  message {e.message_id}\n"
        + (f"      {e.diagnostic[:300]}\n" if e.diagnostic else "")
    )


def cmd_contact_show(args: argparse.Namespace) -> int:
    """``bouncd contact show ADDRESS``."""
    address = require_address(args.address)
    _settings, engine = open_store(args)
    with transaction(engine, readonly=True) as session:
        contact = repo.find_contact(session, address)
        if contact is None:
            raise NotFound(f"unknown address: {address} (no contact recorded)")
        trail = repo.contact_trail(session, contact.id)
        events = repo.recent_bounces(session, contact.id, args.bounces)
    data = {
        "address": contact.address,
        "external_id": contact.external_id,
        "dnc": contact.dnc,
        "dnc_since": _iso(contact.dnc_since),
        "dnc_source": contact.dnc_source,
        "reason": trail[-1][0].note if contact.dnc and trail else None,
        "trail": [trail_dict(t, e) for t, e in trail],
        "bounces": [event_dict(e) for e in events],
    }
    state = f"DNC since {_iso(contact.dnc_since)} ({contact.dnc_source})" if contact.dnc else "contactable"
    lines = [f"{contact.address}: {state}"]
    if data["reason"]:
        lines.append(f"  reason: {data['reason']}")
    lines.append(f"trail ({len(trail)}):" if trail else "trail: empty")
    for t, e in trail:
        lines.append(f"  {_iso(t.at)}  DNC {t.action.upper()}  {t.source}  by {t.actor}  rule {t.rule or '-'}")
        lines.append(f"      {t.note}")
        if e is not None:
            lines.append(f"      evidence: status {e.status or '-'}, {e.diagnostic[:300] or e.evidence}, message {e.message_id}")
    lines.append(f"recent bounces ({len(events)}):")
    emit(args, data, "\n".join(lines) + "\n" + "".join(_event_line(e) for e in events))
    return EXIT_OK


def cmd_dnc_set(args: argparse.Namespace) -> int:
    """``bouncd dnc on|off ADDRESS --note ...``."""
    address = require_address(args.address)
    _settings, engine = open_store(args)
    with transaction(engine) as session:
        change = apply_dnc(
            session, address, on=args.on, source="manual", actor=args.actor, note=args.note, now=datetime.now(UTC),
            create=args.on,
        )
    state = "on" if change.dnc else "off"
    text = f"{address}: DNC {state}" + ("" if change.changed else f" (already {state}; nothing written)")
    emit(args, {"address": address, "dnc": change.dnc, "changed": change.changed, "trail_id": change.trail_id}, text)
    return EXIT_OK


def cmd_dnc_list(args: argparse.Namespace) -> int:
    """``bouncd dnc list``."""
    _settings, engine = open_store(args)
    with transaction(engine, readonly=True) as session:
        rows = repo.list_dnc(session, args.limit)
    data = [{"address": c.address, "dnc_since": _iso(c.dnc_since), "source": c.dnc_source} for c in rows]
    emit(args, data, "".join(f"{d['address']}  {d['dnc_since']}  {d['source']}\n" for d in data) or "no contact is DNC")
    return EXIT_OK


def cmd_bounces_list(args: argparse.Namespace) -> int:
    """``bouncd bounces list``."""
    contact = require_address(args.contact) if args.contact else None
    _settings, engine = open_store(args)
    with transaction(engine, readonly=True) as session:
        rows = repo.list_bounces(session, since=args.since, hard=args.hard, reason=args.reason, contact=contact, limit=args.limit)
    emit(args, [event_dict(e) for e in rows], "".join(f"{e.recipient}" + _event_line(e)[1:] for e in rows) or "no bounces")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    """``bouncd stats``."""
    _settings, engine = open_store(args)
    with transaction(engine, readonly=True) as session:
        data = repo.stats(session, args.since)
    lines = ["by kind: " + ", ".join(f"{k} {n}" for k, n in data["by_kind"].items())]
    lines += [f"  {r['reason']:<16} {'hard' if r['hard'] else 'soft'} {r['count']}" for r in data["by_reason"]]
    lines += ["by day:"] + [f"  {d} {n}" for d, n in data["by_day"].items()]
    by_state = ", ".join(f"{k} {n}" for k, n in data["messages_by_state"].items())
    backlog = data["backlog"]
    age = backlog["oldest_age_seconds"]
    lines += [f"messages: {data['messages']}" + (f" ({by_state})" if by_state else "")]
    lines += [f"backlog: {backlog['count']}" + (f", oldest {age:.0f} s ago" if age is not None else "")]
    lines += [f"DNC contacts: {data['dnc_contacts']}"]
    emit(args, data, "\n".join(lines))
    return EXIT_OK


def cmd_messages_show(args: argparse.Namespace) -> int:
    """``bouncd messages show ID [--raw]``."""
    _settings, engine = open_store(args)
    with transaction(engine, readonly=True) as session:
        msg = repo.get_message(session, args.id)
        events = repo.events_of_message(session, msg.id)
        raw = repo.raw_bytes(msg)
    if args.raw:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return EXIT_OK
    data = {
        "id": msg.id,
        "sha256": msg.sha256,
        "size": msg.raw_size,
        "mail_from": msg.mail_from,
        "rcpt_tos": [r for r in msg.rcpt_tos.split("\n") if r],
        "peer": msg.peer,
        "protocol": msg.protocol,
        "received_at": _iso(msg.received_at),
        "arrived_at": _iso(msg.arrived_at),
        "state": msg.state,
        "kind": msg.kind,
        "detector": msg.detector,
        "parse_error": msg.parse_error,
        "error": msg.error,
        "signed": msg.signed,
        "events": [event_dict(e) for e in events],
    }
    text = "\n".join(f"{k}: {v}" for k, v in data.items() if k != "events") + "\nevents:\n" + "".join(
        f"  {e.recipient}" + _event_line(e)[1:] for e in events
    )
    emit(args, data, text)
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """``bouncd db upgrade``."""
    settings = load_settings(args.config)
    engine = make_engine(args.db or settings.database.url)
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    print(f"database at {after}" + (f" (was {before or 'empty'})" if before != after else " (already up to date)"))
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    """``bouncd ingest FILE|-``: exit 75 (EX_TEMPFAIL) when the message could not be stored, so the MTA retries."""
    if args.path == "-":
        raw, protocol = sys.stdin.buffer.read(), "pipe"
    else:
        try:
            raw, protocol = Path(args.path).read_bytes(), "cli"
        except OSError as exc:
            raise UsageError(f"cannot read {args.path}: {exc.strerror}") from None
    try:
        settings, engine = open_store(args)
        inbound = Inbound(
            raw=raw,
            received_at=datetime.now(UTC),
            # Postfix local(8) exports these to commands run from aliases/.forward; pipe(8) users pass
            # ${recipient} / ${sender} as --rcpt / --mail-from.
            mail_from=args.mail_from if args.mail_from is not None else os.environ.get("SENDER"),
            rcpt_tos=tuple(r for r in (args.rcpt or os.environ.get("ORIGINAL_RECIPIENT") or os.environ.get("RECIPIENT"),) if r),
            protocol=protocol,
        )
        result = ingest_message(engine, settings, inbound, arrival_override=args.received_at)
    except (StoreError, ConfigError) as exc:
        print(f"bouncd: message not stored, retry later: {exc}", file=sys.stderr)
        return EXIT_TEMPFAIL
    data = {
        "message_id": result.message_id,
        "duplicate": result.duplicate,
        "state": result.state,
        "kind": result.kind,
        "arrived_at": _iso(result.arrived_at),
        "error": result.error,
        "dnc_raised": list(result.dnc_raised),
        "events": [dataclasses.asdict(e) for e in result.events],
    }
    if result.duplicate:
        text = f"message {result.message_id}: already stored (same bytes); nothing changed"
    else:
        text = f"message {result.message_id}: {result.state} {result.kind or ''}".rstrip() + "".join(
            f"\n  {e.recipient}: {'HARD' if e.hard else 'soft'} {e.reason} ({e.rule}) -> {e.policy_rule}"
            + ("  DNC ON" if e.dnc_raised else "")
            for e in result.events
        )
    if result.error:
        print(f"bouncd: message {result.message_id} stored but processing failed: {result.error}", file=sys.stderr)
    emit(args, data, text)
    return EXIT_OK


def cmd_reprocess(args: argparse.Namespace) -> int:
    """``bouncd reprocess [--since] [--dry-run]``."""
    settings, engine = open_store(args)
    actor = f"reprocess by {os.environ.get('USER', 'admin')}"
    changes = reprocess(engine, settings, since=args.since, dry_run=args.dry_run, actor=actor)
    verb = "would change" if args.dry_run else "changed"
    text = "".join(f"message {c.message_id} {c.recipient or ''}: {c.what} {c.before} -> {c.after}\n" for c in changes)
    emit(args, [dataclasses.asdict(c) | {"dry_run": args.dry_run} for c in changes], text + f"{len(changes)} {verb}")
    return EXIT_OK
