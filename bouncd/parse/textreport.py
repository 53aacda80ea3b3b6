"""Shared reading of plain-text bounces: the non-standard MTA families are configurations of this.

Most non-standard bounces have the same shape: a fixed introduction, then for each failed recipient
a line naming the address followed by the server's words, then a fixed line before the returned
original. A family module states its markers in a :class:`TextFormat`; :class:`TextDetector` cuts
the report out of the body, splits it at recipient lines and reads status, reply code and SMTP
command from the words that follow each one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from bouncd.address import normalize_address
from bouncd.parse.base import Mail, find_command, find_reply_code, find_status, original_message_id, unfold
from bouncd.records import Failure, Kind, Parsed

# A bare or bracketed address; the domain needs a dot so that "user@localhost" noise is skipped.
ADDRESS = r"<?[\"']?(?P<addr>[^\s<>\"'()\[\]:;,@]+@[A-Za-z0-9][A-Za-z0-9.\-]*\.[A-Za-z0-9\-]+)[\"']?>?"
ADDRESS_RE = re.compile(ADDRESS)
MAX_DIAGNOSTIC = 1000
_IN_REPLY = re.compile(r"\s*\(in reply to (?:end of )?[A-Z][A-Za-z ]* command\)", re.I)

Gate = Callable[[Mail], bool]


@dataclass(frozen=True, slots=True)
class Hint:
    """A fixed wording of one MTA that states the reason for sure (set as ``reason_hint``)."""

    pattern: re.Pattern[str]
    reason: str
    rule: str
    # a give-up sentence ("in the queue too long") says why retries stopped, not what failed: when
    # the words also carry a status code, that code names the cause and the hint stands down
    unless_status: bool = False


@dataclass(frozen=True, slots=True)
class TextFormat:
    """How one family words its plain-text bounce."""

    name: str
    gate: Gate  # cheap test on headers/subject/first lines: is this the family at all?
    starts: tuple[str, ...] = ()  # lower-case markers; the report begins after the first one found
    ends: tuple[str, ...] = ()  # lower-case markers; the report stops at the first one after the start
    recipient: re.Pattern[str] = field(default_factory=lambda: re.compile(r"^\s*" + ADDRESS + r":?\s*(?P<rest>.*)$"))
    hints: tuple[Hint, ...] = ()
    delayed: tuple[str, ...] = ()  # lower-case markers (subject or report) of a delay warning
    blank_ends_segment: bool = False
    # lines that frame the server's words rather than being them ("host X did not like our RCPT TO:");
    # they are read for the SMTP command and remote host, then left out of the diagnostic
    frame: re.Pattern[str] | None = None
    require_start: bool = True  # without a start marker the message is not this family's report


def cut_report(text: str, starts: tuple[str, ...], ends: tuple[str, ...]) -> tuple[str, str] | None:
    """(report, rest): the text after the first start marker's line up to the first end marker's line."""
    low = text.lower()
    begin = 0
    if starts:
        hits = [i for i in (low.find(s) for s in starts) if i >= 0]
        if not hits:
            return None
        first = min(hits)
        nl = text.find("\n", first)
        begin = len(text) if nl < 0 else nl + 1
    stop = len(text)
    for marker in ends:
        i = low.find(marker, begin)
        if 0 <= i < stop:
            stop = i
    line_start = text.rfind("\n", 0, stop) + 1 if stop < len(text) else stop
    return text[begin : max(begin, line_start)], text[stop:]


def own_addresses(mail: Mail) -> frozenset[str]:
    """Addresses a report must never blame: the bounce's author (the reporting MTA's own mailbox).

    The bounce's To (the original sender) is not excluded: people do mail themselves, and a
    recipient line names its address explicitly; the cut before the returned original keeps the
    sender's header lines out of reach.
    """
    out = set()
    for name in ("From", "Sender"):
        addr = normalize_address(mail.header(name))
        if addr:
            out.add(addr)
    return frozenset(out)


def is_daemon(addr: str) -> bool:
    """Addresses of mail software, never a failed recipient."""
    local = addr.split("@", 1)[0]
    return local in ("mailer-daemon", "mail-daemon", "mailer_daemon", "mail.delivery.system")


def split_segments(report: str, recipient: re.Pattern[str], blank_ends: bool = False) -> list[tuple[str, list[str]]]:
    """[(address, lines)]: each recipient line opens a segment; following lines are its words."""
    segments: list[tuple[str, list[str]]] = []
    for line in report.splitlines():
        m = recipient.match(line)
        if m:
            addr = normalize_address(m.group("addr"))
            if addr:
                rest = m.groupdict().get("rest") or ""
                segments.append((addr, [rest.strip()] if rest.strip() else []))
                continue
        if not segments:
            continue
        if not line.strip():
            if blank_ends and segments[-1][1]:
                segments.append(("", []))  # closed: later lines belong to no one
            continue
        if segments[-1][0]:
            segments[-1][1].append(line.strip())
    return [(a, ls) for a, ls in segments if a]


def lead_words(report: str, recipient: re.Pattern[str]) -> list[str]:
    """The report's lines before its first recipient line: some MTAs state the reason first (au, IMail)."""
    out = []
    for line in report.splitlines():
        if recipient.match(line):
            break
        if line.strip():
            out.append(line.strip())
    return out[-6:]


def merge_segments(segments: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """One entry per address, in order of first appearance, words joined."""
    merged: dict[str, list[str]] = {}
    for addr, lines in segments:
        merged.setdefault(addr, []).extend(lines)
    return list(merged.items())


def failure_from_words(
    addr: str | None,
    words: str,
    *,
    action: str = "failed",
    hints: tuple[Hint, ...] = (),
    status: str | None = None,
    command: str | None = None,
    frame: re.Pattern[str] | None = None,
) -> Failure:
    """A Failure from the server's words: status, reply code, command and any fixed-wording hint."""
    remote = None
    if frame is not None:
        kept = []
        for line in words.splitlines():
            m = frame.search(line)
            while m:  # one line may carry several frames ("Delay reason: SMTP error ... after X:")
                command = command or find_command(line)
                remote = remote or (m.groupdict().get("host") or None)
                line = line[m.end() :].strip()
                m = frame.search(line) if line else None
            if line:
                kept.append(line)
        if kept:
            words = "\n".join(kept)
    command = command or find_command(words)
    # Postfix appends "(in reply to RCPT TO command)": the command is kept, the words dropped.
    diagnostic = unfold(_IN_REPLY.sub("", words))[:MAX_DIAGNOSTIC]
    found = find_status(diagnostic)
    if found and (status is None or not found.endswith(".0.0")):
        status = found
    hint = next((h for h in hints if h.pattern.search(diagnostic) and not (h.unless_status and found)), None)
    return Failure(
        recipient=addr,
        action=action,
        status=status,
        reply_code=find_reply_code(diagnostic, status) if diagnostic else None,
        diagnostic=diagnostic,
        remote_mta=remote,
        command=command or find_command(diagnostic),
        reason_hint=hint.reason if hint else None,
        hint_rule=hint.rule if hint else None,
        hint_evidence=(hint.pattern.search(diagnostic).group(0) if hint else ""),  # type: ignore[union-attr]
    )


def build_parsed(mail: Mail, name: str, failures: list[Failure], rest: str = "", kind: Kind = Kind.BOUNCE) -> Parsed:
    """The Parsed for a text report; the original's headers come from the attachment or the quoted rest."""
    headers = mail.original_headers(original_text(rest))
    return Parsed(
        kind=kind,
        detector=name,
        failures=tuple(failures),
        original_message_id=original_message_id(headers),
        original_headers=headers,
        arrival_date=mail.arrival_date(),
    )


def original_text(rest: str) -> str:
    """The returned original inside ``rest`` (from its first header line on)."""
    lines = rest.splitlines()
    for i, line in enumerate(lines[:20]):
        if re.match(r"^[A-Za-z][A-Za-z0-9-]*:\s", line) and not line.lower().startswith(("content-type: message",)):
            return "\n".join(lines[i:])
    return ""


def failed_recipients_header(mail: Mail) -> list[str]:
    """Addresses in X-Failed-Recipients (Exim, Gmail, Google Groups)."""
    value = mail.header("X-Failed-Recipients")
    out: list[str] = []
    for part in value.split(","):
        addr = normalize_address(part)
        if addr and addr not in out:
            out.append(addr)
    return out


class TextDetector:
    """A detector driven by a :class:`TextFormat`; families subclass it and set ``fmt``."""

    fmt: TextFormat
    name: str

    def __init__(self) -> None:
        self.name = self.fmt.name

    def detect(self, mail: Mail) -> Parsed | None:
        """Read the family's report, or None when the gate or the report's markers are absent."""
        if not self.fmt.gate(mail):
            return None
        return self.read(mail)

    def read(self, mail: Mail) -> Parsed | None:
        """Cut, split and read the report (families override for odd layouts)."""
        fmt = self.fmt
        text = mail.text
        cut = cut_report(text, fmt.starts, fmt.ends)
        if cut is None:
            if fmt.require_start:
                return None
            cut = (text, "")
        report, rest = cut
        report = self.prepare(report)
        own = own_addresses(mail)
        segments = [
            (a, ls or lead_words(report, fmt.recipient))
            for a, ls in merge_segments(split_segments(report, fmt.recipient, fmt.blank_ends_segment))
            if a not in own and not is_daemon(a)
        ]
        action = self.action_of(mail, report)
        failures = [
            failure_from_words(a, "\n".join(ls), action=action, hints=fmt.hints, frame=fmt.frame)
            for a, ls in segments
        ]
        if not failures:
            failures = self.without_recipient_lines(mail, report, action)
        if not failures:
            return None
        return build_parsed(mail, self.name, failures, rest)

    def prepare(self, report: str) -> str:
        """Rewrite family quirks before splitting (default: unchanged)."""
        return report

    def action_of(self, mail: Mail, report: str) -> str:
        """``delayed`` for a delay warning, else ``failed``."""
        if self.fmt.delayed:
            subject = mail.subject.lower()
            low = report.lower()
            if any(m in subject or m in low for m in self.fmt.delayed):
                return "delayed"
        return "failed"

    def without_recipient_lines(self, mail: Mail, report: str, action: str) -> list[Failure]:
        """Fallback when no recipient line matched: X-Failed-Recipients, else one failure for the whole report."""
        words = report.strip()
        if not words:
            return []
        addrs = [a for a in failed_recipients_header(mail) if a not in own_addresses(mail)]
        if addrs:
            return [failure_from_words(a, words, action=action, hints=self.fmt.hints) for a in addrs]
        return []
