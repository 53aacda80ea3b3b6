"""Sendmail's text bounces (and V5/V8 transcripts without a DSN part, and the MTAs copying its layout).

Layout (``savemail.c``): ``----- The following addresses had permanent fatal errors -----`` with
one address per line and an optional ``(reason: ...)`` line, then ``----- Transcript of session
follows -----`` where ``>>>`` lines are our commands, ``<<<`` lines the remote's replies and
``NNN <addr>... text`` lines sendmail's verdict per recipient. Old V5 sendmail sends only the
transcript, split by ``While talking to host:``.
"""

from __future__ import annotations

import dataclasses
import re

from bouncd.address import normalize_address
from bouncd.parse.base import Mail, find_command, find_reply_code, find_status
from bouncd.parse.textreport import ADDRESS_RE, Hint, build_parsed, failure_from_words, is_daemon, own_addresses
from bouncd.records import Failure, Parsed

_ERRORS = re.compile(
    r"-{2,}\s*The following addresses? had (?:permanent fatal errors|fatal errors|delivery problems|"
    r"delivery errors|transient non-fatal errors)\s*-*",
    re.I,
)
_TRANSCRIPT = re.compile(r"-{2,}\s*(?:Transcript of session follows|Non-delivered information)\s*-*", re.I)
_END = re.compile(
    r"^\s*-{2,}\s*(?:Original message follows|Unsent message follows|Message header follows|"
    r"Returned message follows|Original message|Below this line is a copy)|^Content-Type:\s*message/", re.I
)
_SECTION = re.compile(r"^\s*-{2,}.*-{2,}\s*$")
_TALKING = re.compile(r"^(?:\.\.\. )?while talking to (?P<host>[^:\s]+)\.?:", re.I)
_VERDICT = re.compile(r"^(?:\d{3}[ -](?:\d\.\d{1,3}\.\d{1,3} )?)?<?(?P<addr>[^\s<>]+@[^\s<>]+?)>?\.\.\.\s*(?P<text>.*)$")
# savemail.c/queue.c: the queue timeout's fixed wording, in the subject or the transcript.
_EXPIRED = re.compile(r"Cannot send message (?:for|within) \d+ (?:days?|hours?|minutes?)", re.I)
_HINTS = (Hint(_EXPIRED, "expired", "sendmail.queue-timeout"),)
_PIPELINED_RCPT = re.compile(r"\b503\b.*need (?:a )?rcpt|no valid recipients", re.I)
_DELAYED = ("warning: could not send message", "will be retried", "this is a warning message only", "(delay)")


def _is_sendmail(mail: Mail) -> bool:
    head = mail.text[:4000]
    return bool(_ERRORS.search(head)) or "ranscript of session follows" in head


def _unquote(text: str) -> str:
    """A forwarded bounce quoted with '> ' (sendmail bounce forwarded by a user): drop the quoting."""
    if re.search(r"^>+ ?\s*-{2,}\s*(?:The following address|Transcript of session)", text, re.M):
        return re.sub(r"^>+ ?", "", text, flags=re.M)
    return text


class Sendmail:
    """Sendmail-style text bounces: the error list plus the session transcript."""

    name = "sendmail"

    def detect(self, mail: Mail) -> Parsed | None:
        """Read the recipients from the error list or the transcript and their words from both."""
        if not _is_sendmail(mail):
            return None
        lines = _unquote(mail.text).splitlines()
        own = own_addresses(mail)
        listed: dict[str, list[str]] = {}
        transcript: list[str] = []
        section = ""
        current: str | None = None
        end_at = len(lines)
        for i, line in enumerate(lines):
            if _END.search(line):
                end_at = i
                break
            if _ERRORS.search(line):
                section, current = "errors", None
                continue
            if _TRANSCRIPT.search(line):
                section = "transcript"
                continue
            if _SECTION.match(line):
                section = ""
                continue
            if section == "errors":
                stripped = line.strip().removeprefix(">>>").strip()
                low = stripped.lower()
                if low.startswith("(reason:") and current:
                    listed[current].append(stripped[len("(reason:") :].rstrip(")").strip())
                    continue
                if low.startswith("(expanded from:"):
                    addr = normalize_address(stripped)
                    if current is None and addr and addr not in own:
                        current = addr
                        listed.setdefault(addr, [])
                    continue
                m = ADDRESS_RE.search(stripped)
                if m and not stripped.startswith(("\"|", "|")):
                    addr = normalize_address(m.group("addr"))
                    if addr and addr not in own and not is_daemon(addr):
                        current = addr
                        rest = (stripped[: m.start()] + stripped[m.end() :]).strip(" []")
                        listed.setdefault(addr, [])
                        if rest:
                            listed[addr].append(rest)
                    continue
                if stripped.startswith(("\"|", "|")):
                    current = None
            elif section == "transcript":
                transcript.append(line.rstrip())
        verdicts, replies = _read_transcript(transcript)
        recipients: list[str | None] = list(listed) or [a for a in verdicts if a not in own and not is_daemon(a)]
        if not recipients:
            if not replies[0]:
                return None
            recipients = [None]  # V5 transcripts may name only the host ("421 host (smtp)... Deferred")
        action = "failed"
        low_text = (mail.subject + "\n" + "\n".join(lines[:end_at])).lower()
        if any(m in low_text for m in _DELAYED):
            action = "delayed"
        failures: list[Failure] = []
        for addr in recipients:
            words, command = verdicts.get(addr, ("", None)) if addr else ("", None)
            reason = " ".join(listed.get(addr, [])) if addr else ""
            if not words and len(recipients) == 1:
                words, command = replies
            if reason and find_reply_code(reason):
                # "(reason: 550 ...)" is sendmail's summary; the transcript may hold the status code
                more = len(recipients) == 1 and _more_specific(words, reason)
                text = f"{reason} {words}" if more else reason
            else:
                text = " ".join(w for w in (reason, words) if w)
            failure = failure_from_words(addr, text or words, action=action, command=command, hints=_HINTS)
            expiry = _EXPIRED.search(mail.subject)
            if expiry and failure.reason_hint is None:
                failure = dataclasses.replace(
                    failure, reason_hint="expired", hint_rule="sendmail.queue-timeout", hint_evidence=expiry.group(0)
                )
            failures.append(failure)
        return build_parsed(mail, self.name, failures, "\n".join(lines[end_at:]))


def _more_specific(transcript: str, reason: str) -> bool:
    """The transcript's remote reply carries a status code the reason line lacks."""
    return find_status(reason) is None and find_status(transcript) is not None


def _read_transcript(lines: list[str]) -> tuple[dict[str, tuple[str, str | None]], tuple[str, str | None]]:
    """Per-address words from ``NNN <addr>... text`` lines, and all remote replies for a lone recipient."""
    verdicts: dict[str, tuple[str, str | None]] = {}
    last_reply: list[str] = []
    all_replies: list[str] = []
    prose: list[str] = []
    command: str | None = None
    last_command: str | None = None
    in_reply = False
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if _TALKING.match(line):
            last_reply, command, in_reply = [], None, False
            continue
        if line.startswith(">>>"):
            command = find_command(line) or command
            last_command = command
            last_reply, in_reply = [], False
            continue
        if line.startswith("<<<"):
            reply = line[3:].strip()
            if not in_reply:
                last_reply = []
            last_reply.append(reply)
            all_replies.append(reply)
            in_reply = True
            continue
        in_reply = False
        m = _VERDICT.match(line)
        if m:
            addr = normalize_address(m.group("addr"))
            if not addr:
                continue
            # "554 <addr>... 550 Host unknown": the code after "..." is the remote's, the first is sendmail's
            inner = m.group("text")
            if find_reply_code(inner):
                # the verdict quotes its own reply: it answered something other than the last >>> line
                words, verdict_command = inner, None
            else:
                words, verdict_command = " ".join([*last_reply, line]), command
            if addr not in verdicts:
                verdicts[addr] = (words, verdict_command)
            continue
        if find_reply_code(line) and not line.lower().startswith(("received", "from")):
            all_replies.append(line)
        elif not all_replies:
            prose.append(line)
    # With PIPELINING sendmail's last ">>>" is DATA although the replies may answer the RCPTs sent
    # before it ("503 Need RCPT" / "No valid recipients" follow). Which command a reply answered is
    # then unknown, so none is claimed (a DATA-stage refusal reads as content filtering).
    if any(_PIPELINED_RCPT.search(r) for r in all_replies):
        verdicts = {a: (w, None if c == "DATA" else c) for a, (w, c) in verdicts.items()}
        if last_command == "DATA":
            last_command = None
    # Without any reply line the section's prose is the explanation (BIGLOBE's "Non-delivered information").
    return verdicts, (" ".join(all_replies) or " ".join(prose[:6]), last_command)
