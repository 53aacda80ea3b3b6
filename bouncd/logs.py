"""Logging: structlog events, JSON lines to stdout (for journald) or console rendering on a TTY.

Events, not sentences: ``log.info("message.accepted", id=..., peer=...)``; stable keys; never a message
body. The standard-library loggers of aiosmtpd (``mail.log``: one INFO line per SMTP command, with
addresses) and flufl.bounce (a warning per unrecognised message) are quieted to warnings/errors and go
through the same renderer, so the journal holds one format.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

# aiosmtpd logs each command at INFO; flufl.bounce warns on every message it cannot read.
QUIET_LOGGERS = {
    "mail.log": logging.WARNING,
    "mail.debug": logging.WARNING,
    "flufl.bounce": logging.ERROR,
    "alembic": logging.WARNING,  # "Context impl SQLiteImpl." on every start
}

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def is_console(log_format: str, stream: TextIO) -> bool:
    """Console rendering for ``console``, or ``auto`` on a terminal; JSON otherwise."""
    if log_format == "auto":
        return bool(getattr(stream, "isatty", lambda: False)())
    return log_format == "console"


class _LineLogger:
    """structlog's final logger: one rendered event, one line, written under the stdlib handler's lock.

    Our own events skip the standard library (LogRecord, findCaller, Formatter): a ``message.accepted``
    event per message went from ~28 to ~9 us, CPU the event loop answering SMTP gets back. Library
    loggers still go through the handler; both write whole lines to one stream under one lock.
    """

    def __init__(self, name: str, handler: logging.StreamHandler[TextIO]) -> None:
        self.name = name  # read by structlog.stdlib.add_logger_name
        self._handler = handler

    def msg(self, message: str) -> None:
        """Write one line and flush it (journald and pipes see each event at once)."""
        handler = self._handler
        handler.acquire()
        try:
            handler.stream.write(message + "\n")
            handler.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: like logging.Handler, never raise
            pass
        finally:
            handler.release()

    debug = info = warning = warn = error = critical = fatal = exception = msg


def configure_logging(log_format: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog and the standard-library root logger once, for the whole process."""
    stream = stream or sys.stdout
    numeric = _LEVELS.get(level.lower(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if is_console(log_format, stream):
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer()
    handler = logging.StreamHandler(stream)

    def line_logger(*args: Any) -> _LineLogger:
        return _LineLogger(str(args[0]) if args else "", handler)

    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=line_logger,
        # The level test is a method that returns at once for filtered levels (no event dict is built).
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,  # capture_logs in tests must see every logger
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name, quiet in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(quiet, numeric))
