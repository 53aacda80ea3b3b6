"""Raw bytes -> ``email.message.Message`` tree, the same tree ``email.message_from_bytes`` builds, faster.

The standard library's FeedParser is written for incremental input: every line goes through a
generator chain that checks for "need more data", and the parser asks for a part's content type
several times while building it. Here the whole message is at hand, so this is the same algorithm
(``email/feedparser.py`` of CPython 3.11, compat32 policy: the same boundary rules, the same defects,
the same quirks) as plain recursion over a list of lines. The tree it returns is equal, part for part,
to the standard library's (``tests/test_parse_mime.py`` compares them on real and generated mail).

Whatever this module cannot do the way the standard library does (hostile nesting deeper than
``MAX_NESTING``, or any unexpected error) falls back to ``email.message_from_bytes`` itself, so
hostile input behaves exactly as it did before.
"""

from __future__ import annotations

import email
import email.utils
import re
from collections.abc import Callable
from email import errors
from email._policybase import compat32
from email.message import Message
from io import StringIO

# Beyond this many nested parts the standard library parses (and fails) on its own terms.
MAX_NESTING = 150

# The patterns of email.feedparser.
_NLCRE = re.compile(r"\r\n|\r|\n")
_NLCRE_BOL = re.compile(r"(\r\n|\r|\n)")
_HEADER_RE = re.compile(r"^(From |[\041-\071\073-\176]*:|[\t ])")
# A line can only end a part (blank line in a delivery-status part, or "--boundary") when it
# starts with one of these; the matchers are skipped for every other line.
_EOF_STARTS = frozenset("-\r\n")


def _eol_length(s: str) -> int:
    """len() of the line ending FeedParser's NLCRE_eol finds at the very end of ``s`` (0: none).

    The regex search tries every position of a part's payload; only the end matters.
    """
    if s.endswith("\r\n"):
        return 2
    return 1 if s.endswith(("\r", "\n")) else 0


class _TooDeep(Exception):
    """Nesting beyond MAX_NESTING: the standard library takes over."""


class _Boundary:
    """FeedParser's boundary pattern without compiling a regex per message (each boundary is new).

    ``(?P<sep>--B)(?P<end>--)?(?P<ws>[ \\t]*)(?P<linesep>\\r\\n|\\r|\\n)?$`` matched against one line.
    """

    __slots__ = ("sep",)

    def __init__(self, boundary: str) -> None:
        self.sep = "--" + boundary

    def match(self, line: str) -> tuple[bool, str | None] | None:
        """(closing boundary?, line ending) when ``line`` is this boundary, else None."""
        if not line.startswith(self.sep):
            return None
        rest = line[len(self.sep):]
        end = rest.startswith("--")
        if end:
            rest = rest[2:]
        rest = rest.lstrip(" \t")
        # A split line holds at most one line ending, and only at its end.
        if rest == "":
            return end, None
        if rest in ("\r\n", "\r", "\n"):
            return end, rest
        return None


class _Parser:
    """email.feedparser.FeedParser over complete input, without generators."""

    def __init__(self, text: str) -> None:
        # StringIO(newline='').readlines() splits on \r, \n and \r\n and keeps the ends, exactly as
        # FeedParser's BufferedSubFile does (str.splitlines would also split on \x0b, \x1c, ...).
        lines = StringIO(text, newline="").readlines()
        lines.reverse()
        self._stack = lines  # next line last; unread lines are pushed back on top
        self._eofstack: list[Callable[[str], object]] = []
        self._msgstack: list[Message] = []
        self._cur: Message | None = None
        self._last: Message | None = None
        self.types: dict[int, str] = {}  # get_content_type() re-reads the header on every call

    def ctype(self, msg: Message) -> str:
        key = id(msg)  # every Message lives until the parse ends, so ids are not reused
        found = self.types.get(key)
        if found is None:
            found = self.types[key] = msg.get_content_type()
        return found

    def readline(self) -> str:
        stack = self._stack
        if not stack:
            return ""
        line = stack.pop()
        if self._eofstack and line[:1] in _EOF_STARTS:
            for ateof in reversed(self._eofstack):
                if ateof(line):
                    stack.append(line)
                    return ""
        return line

    def unreadline(self, line: str) -> None:
        self._stack.append(line)

    def rest(self) -> list[str]:
        """Every line up to the end of the current part (``readline`` until it returns '')."""
        stack = self._stack
        if not self._eofstack:
            lines = stack[::-1]
            stack.clear()
            return lines
        eofs = self._eofstack
        i = len(stack) - 1
        while i >= 0:
            line = stack[i]
            if line[:1] in _EOF_STARTS and any(ateof(line) for ateof in eofs):
                break  # left for the enclosing part
            if line == "":
                # An end pushed back by the boundary loop: consumed, as readline consumes it.
                lines = stack[i + 1:]
                del stack[i:]
                lines.reverse()
                return lines
            i -= 1
        lines = stack[i + 1:]
        del stack[i + 1:]
        lines.reverse()
        return lines

    def close(self) -> Message:
        self.parsegen()
        root = self._pop_message()
        if self.ctype(root).split("/")[0] == "multipart" and not root.is_multipart():
            root.defects.append(errors.MultipartInvariantViolationDefect())
        return root

    def headers_only(self) -> Message:
        """Only the top-level header block, as FeedParser reads it; the payload stays None."""
        cur = self._new_message()
        headers = []
        stack = self._stack
        while stack:
            line = stack.pop()
            if line == "" or not _HEADER_RE.match(line):
                break
            headers.append(line)
        self._parse_headers(cur, headers)
        return cur

    def _new_message(self) -> Message:
        msg = Message(policy=compat32)
        cur = self._cur
        # "if self._cur" in the original: a Message with no headers is false.
        if cur is not None and len(cur) and self.ctype(cur) == "multipart/digest":
            msg.set_default_type("message/rfc822")
        if self._msgstack:
            self._msgstack[-1].attach(msg)
        self._msgstack.append(msg)
        self._cur = msg
        self._last = msg
        return msg

    def _pop_message(self) -> Message:
        retval = self._msgstack.pop()
        self._cur = self._msgstack[-1] if self._msgstack else None
        return retval

    def parsegen(self) -> None:
        if len(self._msgstack) > MAX_NESTING:
            raise _TooDeep
        cur = self._new_message()
        headers = []
        stack = self._stack
        eofs = self._eofstack
        header_re = _HEADER_RE.match
        while stack:  # readline() inlined: headers are most of the lines a bounce has
            line = stack.pop()
            if line == "":
                break
            if eofs and line[:1] in _EOF_STARTS and any(ateof(line) for ateof in eofs):
                stack.append(line)
                break
            if not header_re(line):
                if not _NLCRE.match(line):
                    cur.defects.append(errors.MissingHeaderBodySeparatorDefect())
                    stack.append(line)
                break
            headers.append(line)
        content_type = self._parse_headers(cur, headers)
        ctype = self._ctype_from(cur, content_type)
        if ctype == "message/delivery-status":
            # RFC 3464 header blocks, one nested Message each, separated by blank lines.
            readline = self.readline
            while True:
                self._eofstack.append(_NLCRE.match)
                self.parsegen()
                self._pop_message()
                self._eofstack.pop()
                readline()
                line = readline()
                if line == "":
                    break
                self.unreadline(line)
            return
        maintype = ctype.split("/")[0]
        if maintype == "message":
            self.parsegen()
            self._pop_message()
            return
        if maintype == "multipart":
            self._parse_multipart(cur, content_type)
            return
        cur.set_payload("".join(self.rest()))

    def _parse_multipart(self, cur: Message, content_type: str | None) -> None:
        boundary = boundary_of(content_type) if content_type is not None else None
        if boundary is _ASK:
            boundary = cur.get_boundary()
        if boundary is None:
            cur.defects.append(errors.NoBoundaryInMultipartDefect())
            cur.set_payload("".join(self.rest()))
            return
        if str(cur.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit", "binary"):
            cur.defects.append(errors.InvalidMultipartContentTransferEncodingDefect())
        boundaryre = _Boundary(boundary)
        readline = self.readline
        capturing_preamble = True
        preamble: list[str] = []
        linesep: str | bool | None = False
        close_boundary_seen = False
        while True:
            line = readline()
            if line == "":
                break
            mo = boundaryre.match(line)
            if mo:
                if mo[0]:
                    close_boundary_seen = True
                    linesep = mo[1]
                    break
                if capturing_preamble:
                    if preamble:
                        # RFC 2046: the last newline belongs to the boundary.
                        lastline = preamble[-1]
                        cut = _eol_length(lastline)
                        if cut:
                            preamble[-1] = lastline[:-cut]
                        cur.preamble = "".join(preamble)
                    capturing_preamble = False
                    self.unreadline(line)
                    continue
                # Consecutive boundary lines make no empty parts (the "" at EOF is pushed back too).
                while True:
                    line = readline()
                    if not boundaryre.match(line):
                        self.unreadline(line)
                        break
                self._eofstack.append(boundaryre.match)
                self.parsegen()
                last = self._last
                assert last is not None
                if self.ctype(last).split("/")[0] == "multipart":
                    epilogue = last.epilogue
                    if epilogue == "":
                        last.epilogue = None
                    elif epilogue is not None:
                        cut = _eol_length(epilogue)
                        if cut:
                            last.epilogue = epilogue[:-cut]
                else:
                    # The raw payload: get_payload() would re-decode 8-bit text (compat32).
                    payload = vars(last)["_payload"]
                    if isinstance(payload, str):
                        cut = _eol_length(payload)
                        if cut:
                            last.set_payload(payload[:-cut])
                self._eofstack.pop()
                self._pop_message()
                self._last = self._cur
            else:
                preamble.append(line)
        if capturing_preamble:
            cur.defects.append(errors.StartBoundaryNotFoundDefect())
            cur.set_payload("".join(preamble))
            self.rest()  # read and dropped, as FeedParser does
            cur.epilogue = ""
            return
        if not close_boundary_seen:
            cur.defects.append(errors.CloseBoundaryNotFoundDefect())
            return
        tail: list[str] = [""] if linesep else []
        tail.extend(self.rest())
        if tail:
            firstline = tail[0]
            bolmo = _NLCRE_BOL.match(firstline)
            if bolmo:
                tail[0] = firstline[len(bolmo.group(0)):]
        cur.epilogue = "".join(tail)

    def _ctype_from(self, msg: Message, value: str | None) -> str:
        """msg.get_content_type(), from the Content-Type value _parse_headers saw first."""
        if value is None:
            ctype = msg.get_default_type()
        elif not value.isascii():
            # compat32 hands 8-bit header values back as Header objects: let the library do it.
            ctype = msg.get_content_type()
        else:
            ctype = value.partition(";")[0].strip().lower()  # email.message._splitparam
            if ctype.count("/") != 1:
                ctype = "text/plain"
        self.types[id(msg)] = ctype
        return ctype

    def _parse_headers(self, cur: Message, lines: list[str]) -> str | None:
        """FeedParser._parse_headers; returns the first Content-Type value, as Message.get would."""
        lastheader = ""
        lastvalue: list[str] = []
        raw: list[tuple[str, str]] = vars(cur)["_headers"]  # Message.set_raw, without the call
        content_type = None
        for lineno, line in enumerate(lines):
            if line[0] in " \t":
                if not lastheader:
                    cur.defects.append(errors.FirstHeaderLineIsContinuationDefect(line))
                    continue
                lastvalue.append(line)
                continue
            if lastheader:
                header = _header_source_parse(lastvalue)
                if content_type is None and header[0].lower() == "content-type":
                    content_type = header[1]
                raw.append(header)
                lastheader, lastvalue = "", []
            if line.startswith("From "):
                if lineno == 0:
                    cut = _eol_length(line)
                    if cut:
                        line = line[:-cut]
                    cur.set_unixfrom(line)
                    continue
                if lineno == len(lines) - 1:
                    # Probably the body's first line: pushed back, and the headers end here.
                    self.unreadline(line)
                    return content_type
                cur.defects.append(errors.MisplacedEnvelopeHeaderDefect(line))
                continue
            i = line.find(":")
            if i == 0:
                cur.defects.append(errors.InvalidHeaderDefect("Missing header name."))
                continue
            lastheader = line[:i]
            lastvalue = [line]
        if lastheader:
            header = _header_source_parse(lastvalue)
            if content_type is None and header[0].lower() == "content-type":
                content_type = header[1]
            raw.append(header)
        return content_type


_ASK = "\x00ask"  # boundary_of cannot tell: Message.get_boundary() decides


def boundary_of(value: str) -> str | None:
    """Message.get_boundary() for a Content-Type value, without re-reading the headers.

    The same steps as email.message (_parseparam, _get_params_preserve, utils.decode_params,
    get_param, collapse_rfc2231_value) for the one parameter asked for. RFC 2231 parameters ("*")
    and 8-bit values are left to the library (returns ``_ASK``).
    """
    if "*" in value or not value.isascii():
        return _ASK
    s = ";" + value
    index = 0
    while s[:1] == ";":  # email.message._parseparam, one parameter at a time
        s = s[1:]
        end = s.find(";")
        while end > 0 and (s.count('"', 0, end) - s.count('\\"', 0, end)) % 2:
            end = s.find(";", end + 1)
        if end < 0:
            end = len(s)
        f = s[:end]
        s = s[end:]
        if "=" in f:
            i = f.index("=")
            f = f[:i].strip().lower() + "=" + f[i + 1:].strip()
        f = f.strip()
        name, sep, val = f.partition("=")  # _get_params_preserve
        name, val = (name.strip(), val.strip()) if sep else (f.strip(), "")
        if name.lower() == "boundary":
            if index:  # decode_params re-quotes every parameter but the first
                val = f'"{email.utils.quote(email.utils.unquote(val))}"'
            return email.utils.unquote(email.utils.unquote(val)).rstrip()  # get_param, collapse
        index += 1
    return None


def _header_source_parse(sourcelines: list[str]) -> tuple[str, str]:
    # compat32.header_source_parse
    name, value = sourcelines[0].split(":", 1)
    value = value.lstrip(" \t")
    if len(sourcelines) > 1:
        value += "".join(sourcelines[1:])
    return name, value.rstrip("\r\n")


def message_from_string(text: str) -> Message:
    """Parse ``text`` into the tree ``email.message_from_string`` builds."""
    try:
        return _Parser(text).close()
    except Exception:  # whatever the fast path cannot do, the standard library does its own way
        return email.message_from_string(text)


def headers_from_string(text: str) -> Message:
    """A Message with the headers ``email.message_from_string(text)`` would have, body left unread."""
    try:
        return _Parser(text).headers_only()
    except Exception:
        return email.message_from_string(text)


def message_from_bytes(raw: bytes) -> Message:
    """Parse ``raw`` into the tree ``email.message_from_bytes`` builds (bytes above 0x7f kept as surrogates)."""
    return message_and_types(raw)[0]


def message_and_types(raw: bytes) -> tuple[Message, dict[int, str]]:
    """The tree of :func:`message_from_bytes`, and ``get_content_type()`` of each part by ``id(part)``.

    The parser reads every part's type while building the tree; handing them on saves detectors from
    re-parsing each Content-Type header. The map is empty when the standard library parsed instead.
    """
    try:
        parser = _Parser(raw.decode("ascii", "surrogateescape"))
        return parser.close(), parser.types
    except Exception:
        return email.message_from_bytes(raw), {}
