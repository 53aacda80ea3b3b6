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
- qmail-remote: ``does not like recipient.``, ``failed on DATA command``
- Gmail: ``Google tried to deliver your message ... (state 14).`` (14 = RCPT, 17/18 = DATA, 13 = EHLO)
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
    (re.compile(r"does not like recipient"), RCPT),
    (re.compile(r"failed on data command|failed after i sent the message"), DATA),
)
# Gmail's outbound MTA numbers the SMTP stage it reached: "... (state 14)." (see Sisimai Lhost::Gmail).
_GMAIL_STATE = re.compile(r"\(state (\d{1,2})\)")
_GMAIL_STATES = {"6": MAIL, "13": HELO, "14": RCPT, "15": DATA, "17": DATA, "18": DATA}


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
    m = _GMAIL_STATE.search(text)
    if m and "google tried to deliver your message" in text:
        return _GMAIL_STATES.get(m.group(1))
    return None
