"""Which SMTP command a failure answered, read from the reporting MTA's own words when no field says it.

The command matters: a 5xx to ``MAIL FROM`` is about the sender, at the greeting or ``HELO`` about the
sending host, after ``DATA`` about the content - only a reply to ``RCPT TO`` speaks about the recipient's
address. MTAs word it differently:

- Postfix: ``... (in reply to RCPT TO command)``, ``(in reply to end of DATA command)``
- Exim: ``SMTP error from remote mail server after RCPT TO:<...>:``, ``after end of data``,
  ``after initial connection``, ``after MAIL FROM:<...>``
- Sendmail transcript: ``>>> RCPT To:<...>``, ``>>> DATA``
- qmail: ``Connected to 192.0.2.1 but sender was rejected.`` / ``but my name was rejected.``
- GMX, Orange: ``SMTP error from remote server after RCPT command``, ``for TEXT command``
"""

from __future__ import annotations

import re

from bouncd.classify.rules import CONN, DATA, HELO, MAIL, RCPT

_VERB = {
    "rcpt": RCPT, "mail": MAIL, "data": DATA, "end of data": DATA, "text": DATA, "body": DATA,
    "helo": HELO, "ehlo": HELO, "initial connection": CONN, "connection": CONN, "greeting": CONN,
    "banner": CONN, "connect": CONN,
}

_PATTERNS = (
    re.compile(r"in reply to (rcpt|mail|data|end of data|helo|ehlo)\b"),
    re.compile(r"\bafter (rcpt|mail|end of data|data|initial connection|helo|ehlo|connect)\b"),
    re.compile(r"\bfor (rcpt|mail|data|text|helo|ehlo) command"),
    re.compile(r"\b(rcpt|mail|data|helo|ehlo) (?:to|from)?\s*command\b"),
    re.compile(r">>> (rcpt|mail|data|helo|ehlo)\b"),
)
_QMAIL = (
    (re.compile(r"but sender was rejected"), MAIL),
    (re.compile(r"but my name was rejected"), HELO),
    (re.compile(r"but greeting failed|but connection died"), CONN),
)


def normalize_command(command: str | None) -> str | None:
    """Canonical command name (CONN, HELO, MAIL, RCPT, DATA) for what a parser reported."""
    if not command:
        return None
    c = command.strip().upper()
    if c in ("EHLO", "HELO", "LHLO"):
        return HELO
    if c in ("CONN", "CONNECT", "GREETING", "BANNER"):
        return CONN
    if c in ("MAIL", "RCPT", "DATA"):
        return c
    if c in ("BDAT", "TEXT", "BODY", "END-OF-DATA"):
        return DATA
    return None


def infer_command(text: str) -> str | None:
    """The SMTP command the normalised diagnostic ``text`` says it answered, if it says so."""
    for pat in _PATTERNS:
        m = pat.search(text)
        if m:
            return _VERB.get(m.group(1))
    for pat, cmd in _QMAIL:
        if pat.search(text):
            return cmd
    return None
