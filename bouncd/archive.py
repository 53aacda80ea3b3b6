"""``bouncd import PATH``: bulk import of an mbox, a maildir, a folder of ``.eml`` files, or one message.

Each message goes through the same unit of work as ``bouncd ingest`` (store, then process); the SHA-256
of the bytes makes a re-run change nothing. Archived mail takes its arrival time from the report
(``Arrival-Date``, then ``Date``), so policy windows count the days the bounces really arrived.
"""

from __future__ import annotations

import mailbox
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import structlog

from bouncd.errors import UsageError
from bouncd.records import Inbound

log = structlog.get_logger("bouncd.archive")


def detect_format(path: Path) -> str:
    """``maildir``, ``eml-dir``, ``mbox`` or ``eml`` for ``path``; UsageError when it is none of them."""
    if path.is_dir():
        return "maildir" if (path / "cur").is_dir() and (path / "new").is_dir() else "eml-dir"
    if not path.is_file():
        raise UsageError(f"no such file or directory: {path}")
    with path.open("rb") as fh:
        head = fh.read(5)
    return "mbox" if head == b"From " else "eml"


def iter_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, raw bytes) for every message under ``path``, in a stable order."""
    fmt = detect_format(path)
    if fmt == "eml":
        yield path.name, path.read_bytes()
    elif fmt == "eml-dir":
        for f in sorted(p for p in path.rglob("*.eml") if p.is_file()):
            yield str(f.relative_to(path)), f.read_bytes()
    elif fmt == "maildir":
        md = mailbox.Maildir(str(path), factory=None, create=False)
        for key in sorted(md.keys()):
            yield key, md.get_bytes(key)
    else:
        mb = mailbox.mbox(str(path), factory=None, create=False)
        try:
            for i, key in enumerate(mb.keys()):
                yield f"{path.name}#{i + 1}", mb.get_bytes(key)
        finally:
            mb.close()


@dataclass
class ImportSummary:
    """What an import did."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    dnc_raised: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain data for --json."""
        return dict(self.__dict__)


class _Progress:
    """A one-line progress display on a terminal; nothing otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.on = bool(getattr(stream, "isatty", lambda: False)())
        self.last = 0.0

    def update(self, s: ImportSummary, force: bool = False) -> None:
        now = time.monotonic()
        if self.on and (force or now - self.last > 0.2):
            self.last = now
            self.stream.write(f"\rimport: {s.read} read, {s.stored} new, {s.duplicates} already stored, {s.failed} failed")
            self.stream.flush()

    def done(self) -> None:
        if self.on:
            self.stream.write("\n")


def import_path(engine: Any, settings: Any, path: Path, *, stream: TextIO | None = None) -> ImportSummary:
    """Store and process every message under ``path``; idempotent on re-run."""
    from bouncd.ingest import ingest_message

    summary = ImportSummary()
    progress = _Progress(stream or sys.stderr)
    for name, raw in iter_messages(path):
        summary.read += 1
        inbound = Inbound(raw=raw, received_at=datetime.now(UTC), protocol="import", peer=f"import:{name}"[:300])
        result = ingest_message(engine, settings, inbound)
        if result.duplicate:
            summary.duplicates += 1
        else:
            summary.stored += 1
        if result.state == "failed":
            summary.failed += 1
        summary.dnc_raised += len(result.dnc_raised)
        progress.update(summary)
    progress.update(summary, force=True)
    progress.done()
    log.info("import.done", path=str(path), **summary.as_dict())
    return summary


def cmd_import(args: Any) -> int:
    """``bouncd import PATH``."""
    import json

    from bouncd.daemon import settings_from_args
    from bouncd.db import upgrade
    from bouncd.db.session import make_engine

    settings = settings_from_args(args)
    engine = make_engine(settings.database.url)
    upgrade(engine)
    try:
        summary = import_path(engine, settings, Path(args.path))
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        s = summary
        print(f"{s.read} messages read: {s.stored} stored, {s.duplicates} already stored, {s.failed} failed; "
              f"{s.dnc_raised} contacts made DNC")
    return 0
