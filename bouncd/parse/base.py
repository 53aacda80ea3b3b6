"""The parsed-message view every detector reads, and the Detector protocol."""

from __future__ import annotations

import email
import email.message
import email.utils
import re
from collections.abc import Iterator
from datetime import datetime
from email.header import decode_header, make_header
from functools import cached_property
from typing import Protocol, runtime_checkable

from bouncd.parse import mime
from bouncd.records import Parsed

MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # larger input is truncated before parsing
MAX_PARTS = 200  # parts walked in one message; hostile nesting stops here
MAX_DEPTH = 12
MAX_TEXT_CHARS = 256 * 1024  # decoded human-readable text kept per message
MAX_ORIGINAL_HEADERS = 60

# RFC 3463 class.subject.detail; not part of a dotted number (IPs, versions like v4.1.2).
STATUS_RE = re.compile(r"(?<![\d.A-Za-z])([245])\.([0-7])\.(\d{1,3})(?![\d]|\.\d)")
REPLY_CODE_RE = re.compile(r"(?<![\d.#\-A-Za-z])([245][0-5]\d)(?=[\s\-.:;,)\]>']|$)")
IPV4_RE = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")

@runtime_checkable
class Detector(Protocol):
    """Recognises one message format and reads its failures."""

    name: str

    def detect(self, mail: Mail) -> Parsed | None:
        """Return what the message reports, or None when the format is not this detector's."""
        ...


def decode_part(part: email.message.Message) -> str:
    """Decoded text of a non-multipart part, whatever its transfer encoding or charset claims."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    if not isinstance(payload, bytes):
        return str(payload)
    charset = part.get_content_charset() or "utf-8"
    return decode_bytes(payload, charset)


# Tried in turn when the declared charset does not fit the bytes: Japanese carriers and old MTAs
# label EUC-JP or Shift_JIS text as ISO-2022-JP (au/EZweb), or send 8-bit text as us-ascii.
_FALLBACK_CHARSETS = ("utf-8", "iso-2022-jp", "euc-jp", "shift_jis", "cp1252")


def decode_bytes(payload: bytes, charset: str = "utf-8") -> str:
    """Text of ``payload``: the declared charset when it fits, else the first fallback that does."""
    try:
        return payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        pass
    for candidate in _FALLBACK_CHARSETS:
        try:
            return payload.decode(candidate)
        except UnicodeDecodeError:
            continue
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # unknown charset name
        return payload.decode("utf-8", errors="replace")


def decode_escapes(value: str) -> str:
    """A header-like value carrying raw ISO-2022-JP escape sequences (Notes/Domino DSN fields) as text."""
    if "\x1b$" not in value:
        return value
    try:
        return value.encode("ascii", errors="surrogateescape").decode("iso-2022-jp")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def decode_header_value(value: object) -> str:
    """An RFC 2047 header value as text; broken encodings are kept as they came."""
    if value is None:
        return ""
    s = str(value)
    if "=?" not in s:
        return s
    try:
        return str(make_header(decode_header(s)))
    except Exception:
        return s


def unfold(text: str) -> str:
    """Join folded lines and squeeze white space."""
    return " ".join(text.split())


def all_statuses(text: str) -> list[str]:
    """Every RFC 3463 enhanced status code in ``text``, in order (IPv4 addresses skipped)."""
    if "." not in text:
        return []
    text = IPV4_RE.sub(" ", text)
    return [f"{m.group(1)}.{m.group(2)}.{m.group(3)}" for m in STATUS_RE.finditer(text)]


def is_generic_status(status: str) -> bool:
    """X.0.0 says only the class; 4.4.7 only says a queue timer ran out (the cause is elsewhere)."""
    return status.endswith(".0.0") or status == "4.4.7"


_AFTER_REPLY = re.compile(r"\b[245]\d\d[ -]['\"]?([245]\.[0-7]\.\d{1,3})(?![\d]|\.\d)")


def find_status(text: str) -> str | None:
    """The most specific RFC 3463 status code in ``text``.

    A code that follows a reply code (``550 5.7.1``, ``550-'5.7.1``) is the remote server's own and
    wins over a relay's summary in front of it (Amazon SES: ``5.1.0 - Unknown address error
    550-'5.7.1 ...'``); then the first code that is not generic; then the first.
    """
    found = all_statuses(text)
    if not found:
        return None
    for m in _AFTER_REPLY.finditer(text):
        if not is_generic_status(m.group(1)):
            return m.group(1)
    return next((s for s in found if not is_generic_status(s)), found[0])


def find_reply_code(text: str, status: str | None = None) -> str | None:
    """The RFC 5321 reply code in ``text``; one of the same class as ``status`` is preferred."""
    s = text.lstrip()
    leading = len(s) >= 3 and s[:3].isdigit() and s[0] in "245" and (len(s) == 3 or not s[3].isdigit())
    if leading and (status is None or status[0] == s[0]):
        return s[:3]
    codes = [m.group(1) for m in REPLY_CODE_RE.finditer(IPV4_RE.sub(" ", text))] if text else []
    if not codes:
        return s[:3] if leading else None
    if status:
        same = [c for c in codes if c[0] == status[0]]
        if same:
            return same[0]
    return codes[0]


_COMMAND_RES = (
    # Postfix: "(in reply to RCPT TO command)"; Exim: "SMTP error from remote mail server after RCPT TO:";
    # DMA: "did not like our RCPT TO:"; sendmail transcripts: ">>> RCPT To:<...>"; Yahoo: "[RCPT_TO]".
    re.compile(r"in reply to (?:end of )?(RCPT TO|MAIL FROM|DATA|HELO|EHLO|CONNECT)\b", re.I),
    re.compile(r"\bafter (RCPT TO|MAIL FROM|end of data|DATA|HELO|EHLO|initial connection|pipelined)\b", re.I),
    re.compile(r"did not like our (RCPT TO|MAIL FROM|final DATA|DATA|HELO|EHLO)\b", re.I),
    re.compile(r">>> (RCPT|MAIL|DATA|HELO|EHLO|QUIT)\b", re.I),
    re.compile(r"\[(RCPT_TO|MAIL_FROM|DATA)\]"),
    re.compile(r"\((RCPT|DATA|MAIL)\)"),
    re.compile(r"\bSMTP:(RCPT|DATA|MAIL|HELO|EHLO)\b"),
    # GMX / 1&1: "SMTP error from remote server after RCPT command" / "for TEXT command"
    re.compile(r"\b(?:after|for) (RCPT|MAIL|DATA|TEXT|HELO|EHLO) command\b", re.I),
    # qmail-remote's fixed sentences
    re.compile(r"does not like (recipient)\b", re.I),
    re.compile(r"but (sender) was rejected", re.I),
    re.compile(r"(failed after I sent the message|didn't like the message)", re.I),
    re.compile(r"but (greeting) failed", re.I),
)
_COMMAND_NAMES = {"RCPT": "RCPT", "MAIL": "MAIL", "DATA": "DATA", "HELO": "HELO", "EHLO": "HELO",
                  "CONNECT": "CONN", "END": "DATA", "FINAL": "DATA", "INITIAL": "CONN", "PIPELINED": "RCPT",
                  "RECIPIENT": "RCPT", "TEXT": "DATA", "SENDER": "MAIL", "FAILED": "DATA", "DIDN'T": "DATA", "GREETING": "CONN"}


# A literal each of _COMMAND_RES needs (lower case for the re.I patterns, as written for the
# others): a pattern whose literal is absent cannot match, so it is not run. For re.I the test is
# only sound on ASCII text (Unicode case folding lets "\u017f" match "s"), so other text runs them all.
_COMMAND_NEEDS: tuple[tuple[str, bool], ...] = (
    ("in reply to ", True), ("after ", True), ("did not like our ", True), (">>> ", True), ("[", False),
    ("(", False), ("SMTP:", False), (" command", True), ("does not like ", True), ("but sender was rejected", True),
    ("", True), ("but greeting failed", True),
)  # fmt: skip


def find_command(text: str) -> str | None:
    """The SMTP command a failure answered (RCPT, MAIL, DATA, HELO, CONN), when the text names it."""
    low = text.lower() if text.isascii() else None
    for rx, (needed, folded) in zip(_COMMAND_RES, _COMMAND_NEEDS, strict=True):
        if needed:
            if folded:
                if low is not None and needed not in low:
                    continue
            elif needed not in text:
                continue
        m = rx.search(text)
        if m:
            word = m.group(1).upper().replace("_", " ").split()[0]
            return _COMMAND_NAMES.get(word)
    return None


class Mail:
    """One message, parsed once, with the views the detectors share (computed on first use)."""

    def __init__(self, raw: bytes, msg: email.message.Message, types: dict[int, str] | None = None) -> None:
        self.raw = raw
        self.msg = msg
        self._headers: dict[str, str] = {}  # every detector's gate reads the same few headers
        # get_content_type() of each part by id(part), as the parser read them (the tree is kept
        # alive by self.msg, so ids stay unique); parts missing here are asked directly.
        self._types = types or {}
        self._original_headers: dict[str | None, tuple[tuple[str, str], ...]] = {}

    @classmethod
    def from_bytes(cls, raw: bytes) -> Mail:
        """Parse raw bytes into the compat32 tree ``email.message_from_bytes`` builds (in half the time)."""
        msg, types = mime.message_and_types(raw)
        return cls(raw, msg, types)

    def looks_like_mail(self) -> bool:
        """True when at least one header was read."""
        return len(self.msg.keys()) > 0

    def header(self, name: str) -> str:
        """Decoded, unfolded value of the first header ``name`` ('' when absent)."""
        cached = self._headers.get(name)
        if cached is not None:
            return cached
        try:
            value = self.msg.get(name)
        except Exception:
            value = None
        text = unfold(decode_header_value(value)) if value is not None else ""
        self._headers[name] = text
        return text

    @cached_property
    def subject(self) -> str:
        """Decoded subject."""
        return self.header("Subject")

    @cached_property
    def sender(self) -> str:
        """Decoded From header."""
        return self.header("From")

    @cached_property
    def content_type(self) -> str:
        """Lower-case MIME type of the top-level part."""
        return self.msg.get_content_type()

    @cached_property
    def parts(self) -> tuple[email.message.Message, ...]:
        """Every part, depth first, bounded in count and depth."""
        out: list[email.message.Message] = []

        def walk(part: email.message.Message, depth: int) -> None:
            if len(out) >= MAX_PARTS or depth > MAX_DEPTH:
                return
            out.append(part)
            if part.is_multipart():
                payload = part.get_payload()
                if isinstance(payload, list):
                    for sub in payload:
                        if isinstance(sub, email.message.Message):
                            walk(sub, depth + 1)

        walk(self.msg, 0)
        return tuple(out)

    @cached_property
    def typed_parts(self) -> tuple[tuple[str, email.message.Message], ...]:
        """(MIME type, part) for every part: get_content_type() re-parses the header on each call."""
        types = self._types
        return tuple((types.get(id(part)) or part.get_content_type(), part) for part in self.parts)

    def parts_of_type(self, *types: str) -> Iterator[email.message.Message]:
        """Parts whose MIME type is one of ``types``."""
        for ctype, part in self.typed_parts:
            if ctype in types:
                yield part

    @cached_property
    def text(self) -> str:
        """Human-readable body text: text/plain parts outside attached messages, else text/html stripped.

        For a single-part message this is the whole body, whatever its declared type.
        """
        if not self.msg.is_multipart():
            body = decode_part(self.msg)
            if self.content_type == "text/html":
                body = strip_html(body)
            return body[:MAX_TEXT_CHARS]
        chunks: list[str] = []
        html: list[str] = []
        inside_attached = 0
        for ctype, part in self.typed_parts:
            if ctype in ("message/rfc822", "message/global"):
                inside_attached += 1
                continue
            if inside_attached:
                continue  # parts of an attached original are not the bounce's own words
            if ctype == "text/plain":
                chunks.append(decode_part(part))
            elif ctype == "text/html":
                html.append(decode_part(part))
            elif part.is_multipart():
                # A multipart without a usable boundary (folded wrongly, or missing) comes back as
                # one string: its text is still the bounce's own words (Apache James, some gateways).
                unparsed = part.get_payload()
                if isinstance(unparsed, str):
                    chunks.append(unparsed)
        text = "\n".join(chunks) if chunks else "\n".join(strip_html(h) for h in html)
        return text[:MAX_TEXT_CHARS]

    @cached_property
    def delivery_status(self) -> str | None:
        """Text of the RFC 3464 message/delivery-status part, if any."""
        for part in self.parts_of_type(
            "message/delivery-status", "message/global-delivery-status", "text/delivery-status"
        ):
            payload = part.get_payload()
            if isinstance(payload, list):
                # email parses message/delivery-status as a list of header blocks. A block whose
                # Diagnostic-Code continues on unindented lines (MessageLabs: "550-..." lines) is cut
                # there: the rest lands in the block's body, so it is put back after the headers.
                blocks = []
                for block in payload:
                    if isinstance(block, email.message.Message):
                        head = "".join(f"{k}: {v}\n" for k, v in block.items())
                        rest = block.get_payload()
                        if isinstance(rest, str) and rest.strip():
                            head += rest if rest.endswith("\n") else rest + "\n"
                        blocks.append(head)
                return "\n".join(blocks)
            return decode_part(part)
        return None

    @cached_property
    def original(self) -> email.message.Message | None:
        """The returned original message (or its headers), when attached as a MIME part."""
        for ctype, part in self.typed_parts:
            if ctype in ("message/rfc822", "message/global"):
                payload = part.get_payload()
                if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
                    return payload[0]
            if ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers"):
                return mime.message_from_string(decode_part(part).lstrip())
        return None

    def original_headers(self, fallback_text: str | None = None) -> tuple[tuple[str, str], ...]:
        """Headers of the returned original, bounded; read from ``fallback_text`` when not attached."""
        # Detectors and the explainers they ask each read the headers (decoding up to 60 of them);
        # the answer depends only on the attached original, else on the text.
        key = None if self.original is not None else fallback_text
        cached = self._original_headers.get(key)
        if cached is None:
            cached = self._original_headers[key] = self._read_original_headers(fallback_text)
        return cached

    def _read_original_headers(self, fallback_text: str | None) -> tuple[tuple[str, str], ...]:
        orig = self.original
        if orig is None and fallback_text:
            try:
                # Only the header block is read: the same headers a full parse of the text gives.
                orig = mime.headers_from_string(fallback_text.lstrip())
            except Exception:
                orig = None
        if orig is None:
            return ()
        try:
            # Message.items() of the first MAX_ORIGINAL_HEADERS only (items() fetches every header).
            fetch = orig.policy.header_fetch_parse
            items = [(k, fetch(k, v)) for k, v in vars(orig)["_headers"][:MAX_ORIGINAL_HEADERS]]
        except Exception:
            return ()
        out = []
        for k, v in items:
            if not k or ":" in k:
                continue
            # a plain str without an encoded word: decode_header_value would hand it back unchanged
            text = " ".join(v.split()) if type(v) is str and "=?" not in v else unfold(decode_header_value(v))
            out.append((k, text[:998]))
        return tuple(out)

    @cached_property
    def _arrival_date(self) -> datetime | None:
        value = self.header("Date")
        if not value:
            return None
        try:
            return email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None

    def arrival_date(self) -> datetime | None:
        """The message's own Date header as an aware datetime, when it parses."""
        return self._arrival_date  # every detector that answers asks, explainers included


_TAG = re.compile(r"<[^>]*>")
_BR = re.compile(r"<\s*(?:br|/p|/div|/tr|/li)\s*/?\s*>", re.IGNORECASE)
_ENTITIES = {"&nbsp;": " ", "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'"}


def strip_html(html: str) -> str:
    """Crude HTML to text: enough to read a bounce's wording."""
    text = _TAG.sub("", _BR.sub("\n", html))
    for ent, ch in _ENTITIES.items():
        text = text.replace(ent, ch)
    return text


def original_message_id(headers: tuple[tuple[str, str], ...]) -> str | None:
    """The Message-ID among the original's headers."""
    for k, v in headers:
        if k.lower() == "message-id":
            return v.strip() or None
    return None
