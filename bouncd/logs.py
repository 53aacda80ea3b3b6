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
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # capture_logs in tests must see every logger
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name, quiet in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(quiet, numeric))
