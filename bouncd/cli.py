"""Command line: ``build_parser()`` and ``main(argv) -> int``. Thin: it calls the same functions as the daemon.

Exit codes: 0 ok, 1 operational error, 2 usage error; pipe mode exits 75 (EX_TEMPFAIL) when the MTA
should retry.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from bouncd import __version__
from bouncd.analyze import analyze
from bouncd.errors import BouncdError, UsageError
from bouncd.records import Kind, Report

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="bouncd", description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"bouncd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("parse", help="analyze bounce messages and print one row per affected recipient")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, directories of *.eml, or - for stdin")
    p.add_argument("--format", choices=("jsonl", "text"), default="jsonl")
    p.set_defaults(func=cmd_parse)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; map errors to exit codes with a one-line message, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
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
