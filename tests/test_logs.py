"""Logging: JSON lines off a terminal, stable event keys, aiosmtpd/flufl.bounce chatter silenced."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from bouncd.logs import configure_logging, is_console


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_json_lines_carry_event_and_keys() -> None:
    """In json mode each event is one JSON object with event, level, logger, timestamp and the bound keys."""
    out = io.StringIO()
    configure_logging("json", "info", out)
    structlog.get_logger("bouncd.test").info("message.accepted", id=7, peer="127.0.0.1")
    row = json.loads(out.getvalue().strip())
    assert row["event"] == "message.accepted"
    assert row["id"] == 7 and row["peer"] == "127.0.0.1"
    assert row["level"] == "info" and row["logger"] == "bouncd.test" and row["timestamp"].endswith("Z")


def test_library_chatter_is_silenced_but_warnings_stay() -> None:
    """aiosmtpd's per-command INFO lines and flufl.bounce warnings are dropped; aiosmtpd warnings still show, as JSON."""
    out = io.StringIO()
    configure_logging("json", "info", out)
    logging.getLogger("mail.log").info("%r >> %r", ("127.0.0.1", 1), b"RCPT TO:<x@y>")
    logging.getLogger("flufl.bounce").warning("could not parse")
    logging.getLogger("mail.log").warning("too many bogus commands")
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [r["event"] for r in rows] == ["too many bogus commands"]
    assert rows[0]["logger"] == "mail.log"


def test_debug_is_dropped_at_info_level() -> None:
    """log_level filters our own events too."""
    out = io.StringIO()
    configure_logging("json", "info", out)
    structlog.get_logger("bouncd.test").debug("noise")
    assert out.getvalue() == ""


def test_auto_format_follows_the_terminal() -> None:
    """auto renders for a console on a TTY and JSON otherwise (journald, pipes)."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert is_console("auto", Tty()) is True
    assert is_console("auto", io.StringIO()) is False
    assert is_console("json", Tty()) is False
    assert is_console("console", io.StringIO()) is True
    out = Tty()
    configure_logging("auto", "info", out)
    structlog.get_logger("bouncd.test").info("serve.listening", port=2525)
    line = out.getvalue()
    assert "serve.listening" in line and "port=2525" in line and not line.startswith("{")
