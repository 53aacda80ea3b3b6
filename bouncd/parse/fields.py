"""RFC 3464 field blocks, wherever they appear (a delivery-status part, or pasted into a text body)."""

from __future__ import annotations

import email.utils
import re
from datetime import datetime

from bouncd.address import normalize_address
from bouncd.parse.base import decode_escapes, find_command, find_reply_code, find_status, is_generic_status, unfold
from bouncd.records import Failure

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)\s*:\s?(.*)$")
_RECIPIENT_KEYS = ("final-recipient", "original-recipient", "x-actual-recipient")
_TYPE_PREFIX = re.compile(r"^\s*[A-Za-z0-9-]+\s*;\s*")

Block = dict[str, str]


_PER_RECIPIENT = frozenset({"final-recipient", "original-recipient", "action", "status", "x-actual-recipient"})
_PER_MESSAGE = frozenset({"reporting-mta", "arrival-date", "received-from-mta", "original-envelope-id",
                          "dsn-gateway", "x-postfix-queue-id", "x-postfix-sender"})


def parse_blocks(text: str) -> list[Block]:
    """Split RFC 3464 fields into blocks: the per-message block first, then one per recipient.

    Tolerates what real MTAs send: no blank line between recipients (a repeated per-recipient
    field starts a new block), no blank line after the per-message fields, folded values, and a
    Diagnostic-Code continued on unindented lines (MessageLabs' ``550-...`` lines). Keys are
    lower-cased; the first occurrence of a key in a block wins.
    """
    blocks: list[Block] = []
    current: Block = {}
    last_key: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current, last_key = {}, None
            continue
        if line[0] in " \t" and last_key:
            current[last_key] = current[last_key] + " " + line.strip()
            continue
        m = _FIELD.match(line)
        if not m or (last_key == "diagnostic-code" and m.group(1).lower() not in _KNOWN_KEYS):
            if last_key == "diagnostic-code":
                current[last_key] = current[last_key] + " " + line.strip()
            else:
                last_key = None
            continue
        key, value = m.group(1).lower(), m.group(2).strip()
        if key in _PER_RECIPIENT and current and (
            key in current
            or (not any(k in _PER_RECIPIENT for k in current) and any(k in _PER_MESSAGE for k in current))
        ):
            blocks.append(current)
            current = {}
        if key not in current:
            current[key] = value
            last_key = key
        else:
            last_key = None
    if current:
        blocks.append(current)
    return blocks


_DIAG_TYPE = re.compile(r"[a-z][a-z0-9-]{0,19}")  # RFC 3464 diagnostic-type: an atom such as smtp, x-unix

_KNOWN_KEYS = _PER_RECIPIENT | _PER_MESSAGE | frozenset(
    {"remote-mta", "diagnostic-code", "last-attempt-date", "will-retry-until", "final-log-id",
     "x-display-name", "x-supplementary-info", "x-mailer"}
)


def is_recipient_block(block: Block) -> bool:
    """True for a per-recipient block."""
    return any(k in block for k in _RECIPIENT_KEYS) or ("action" in block and "status" in block)


def strip_type(value: str) -> str:
    """``smtp; 550 ...`` -> ``550 ...``; ``dns; mx.example`` -> ``mx.example``."""
    return _TYPE_PREFIX.sub("", value, count=1).strip()


def block_recipient(block: Block) -> str | None:
    """The failed address of a recipient block (Final-Recipient, then Original-Recipient)."""
    for key in _RECIPIENT_KEYS:
        addr = normalize_address(block.get(key))
        if addr:
            return addr
    return None


def block_failure(block: Block) -> Failure:
    """A Failure read from one per-recipient block."""
    diagnostic = unfold(decode_escapes(strip_type(block.get("diagnostic-code", ""))))
    status: str | None = find_status(block.get("status", ""))
    diag_status = find_status(diagnostic)
    # The remote server's own code beats the reporting MTA's summary: many MTAs write a generic
    # Status (5.0.0, 4.4.7) or their own guess (sendmail maps any 550 to 5.1.1) while the
    # Diagnostic-Code quotes the real one. A generic code in the diagnostic never overrides.
    # Exception: a 4.4.7 Status (queue lifetime over) is the outcome and stays, unless the
    # diagnostic itself reports the expiry and quotes the last error inside it (Amazon SES:
    # "554 4.4.7 Message expired ... <421 4.4.2 Connection timed out>"); sendmail's 4.4.7 with
    # "451 4.4.1 reply: read error" is an expiry whose last try failed, not a 4.4.1.
    keep_expiry = status == "4.4.7" and "4.4.7" not in diagnostic
    if diag_status and not keep_expiry and (status is None or not is_generic_status(diag_status)):
        status = diag_status
    remote = strip_type(block.get("remote-mta", "")) or None
    command = find_command(diagnostic)
    action = block.get("action", "").strip().lower() or None
    if action:
        action = action.split()[0].rstrip(";")
    # RFC 3464 §2.3.6: diagnostic-type X-Unix carries a local program's exit status, so the
    # failure is the local delivery program's (sendmail "unknown mailer error", procmail, pipes).
    # Only a bare exit status is read this way: words are the classifier's to read, and sysexits.h
    # codes 64-78 (EX_NOPERM, EX_TEMPFAIL, EX_CANTCREAT ...) name a system condition, not a mailer bug.
    raw_code = block.get("diagnostic-code", "")
    dtype = raw_code.split(";", 1)[0].strip().lower() if ";" in raw_code else ""
    if not _DIAG_TYPE.fullmatch(dtype):
        dtype = ""
    unix = (
        dtype == "x-unix"
        and action != "delivered"
        and diagnostic.isdigit()
        and not 64 <= int(diagnostic) <= 78
    )
    return Failure(
        recipient=block_recipient(block),
        action=action,
        status=status,
        reply_code=find_reply_code(diagnostic, status) if diagnostic and not unix else None,
        diagnostic=diagnostic,
        remote_mta=remote,
        command=command,
        reason_hint="mailererror" if unix else None,
        hint_rule="dsn.x-unix-diagnostic" if unix else None,
        hint_evidence=f"Diagnostic-Code: X-Unix; {diagnostic}" if unix else "",
        diagnostic_type=dtype or None,
    )


def block_date(block: Block) -> datetime | None:
    """Arrival-Date (or Last-Attempt-Date) of a block, when it parses."""
    for key in ("arrival-date", "last-attempt-date"):
        value = block.get(key)
        if value:
            try:
                return email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                continue
    return None
