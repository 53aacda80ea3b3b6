"""bouncd.parse.mime builds exactly the tree the standard library's email parser builds, only faster.

Every detector reads ``email.message.Message`` objects, so the fast parser must agree with
``email.message_from_bytes`` (compat32) on every header, payload, preamble, epilogue, default type and
defect, for real mail, for mutated real mail and for hostile MIME, and hostile nesting must end the way
it ends in the standard library.
"""

from __future__ import annotations

import email
import email.message
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bouncd.parse import mime
from tests.test_fuzz import FUZZ, hostile_mime, mutated_fixture

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "eml"
SAMPLES = sorted((ROOT / "fixtures").rglob("*.eml")) + (sorted(CORPUS.glob("*.eml")) if CORPUS.is_dir() else [])


def tree(msg: email.message.Message) -> object:
    """Everything the parser sets on a message and its parts, as comparable values."""
    payload = msg._payload
    if isinstance(payload, list):
        payload = [tree(p) for p in payload]
    defects = [(type(d).__name__, str(d)) for d in msg.defects]
    return (msg._headers, msg._unixfrom, msg.preamble, msg.epilogue, defects, msg._default_type, payload)


def stdlib_tree(raw: bytes) -> object:
    """The standard library's tree, or the exception type it raised."""
    try:
        return tree(email.message_from_bytes(raw))
    except Exception as exc:
        return type(exc)


def fast_tree(raw: bytes) -> object:
    """The fast parser's own tree (no fallback), or the exception type it raised."""
    try:
        return tree(mime._Parser(raw.decode("ascii", "surrogateescape")).close())
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_real_mail_parses_to_the_standard_library_tree(path: Path) -> None:
    """Every fixture and corpus message: the fast path alone builds the standard library's tree."""
    raw = path.read_bytes()
    assert fast_tree(raw) == stdlib_tree(raw)


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_boundary_edge_cases_match_the_standard_library(eol: str) -> None:
    """Preambles, doubled and padded boundaries, missing close boundaries, digests and DSN blocks agree."""
    raw = eol.join([
        "From someone Tue Nov  3 09:00:00 2026", "Content-Type: multipart/mixed; boundary=\"a.b(c)\"", "",
        "preamble", "--a.b(c)", "--a.b(c) \t", "Content-Type: multipart/digest; boundary=d", "", "--d", "",
        "Subject: digest part", "", "body", "--d--", "epi", "--a.b(c)", "Content-Type: message/delivery-status",
        "", "Reporting-MTA: dns; x", "", "Final-Recipient: rfc822; u@example.org", "Status: 5.1.1", "",
        "--a.b(c)", "Content-Type: message/rfc822", "", "From: x", "Content-Type: multipart/alternative; boundary=e",
        "", "--e", "", "unterminated", "--a.b(c)--x", "--a.b(c)--", "", "epilogue",
    ]).encode()  # fmt: skip
    assert fast_tree(raw) == stdlib_tree(raw)
    assert tree(mime.message_from_string(raw.decode())) == tree(email.message_from_string(raw.decode()))


def test_hostile_nesting_ends_as_in_the_standard_library() -> None:
    """Thousands of nested message/rfc822 parts: the standard library decides (tree or RecursionError)."""
    for depth in (100, 400, 5000):
        raw = b"Content-Type: message/rfc822\n\n" * depth + b"Subject: inner\n\nbody\n"
        try:
            fast: object = tree(mime.message_from_bytes(raw))
        except Exception as exc:
            fast = type(exc)
        assert fast == stdlib_tree(raw), depth


@FUZZ
@given(hostile_mime(max_line=5000))
def test_hostile_mime_parses_to_the_standard_library_tree(raw: bytes) -> None:
    """Wrong boundaries, nesting, NULs and odd line ends: the same tree, defect for defect."""
    assert fast_tree(raw) == stdlib_tree(raw)


@FUZZ
@given(mutated_fixture())
def test_mutated_real_mail_parses_to_the_standard_library_tree(raw: bytes) -> None:
    """Real bounces cut, flipped and refolded: the same tree."""
    assert fast_tree(raw) == stdlib_tree(raw)


@pytest.mark.parametrize("path", SAMPLES[:40] + SAMPLES[-40:], ids=lambda p: p.name)
def test_part_types_handed_on_are_what_get_content_type_says(path: Path) -> None:
    """The content type the parser records for each part is the one Message.get_content_type() reads."""
    msg, types = mime.message_and_types(path.read_bytes())
    assert types, "the fast parser handed on no types"
    for part in msg.walk():
        assert types[id(part)] == part.get_content_type()


@FUZZ
@given(hostile_mime(max_line=5000))
def test_part_types_of_hostile_mime_are_what_get_content_type_says(raw: bytes) -> None:
    """Odd, 8-bit and missing Content-Type headers: the recorded type still equals get_content_type()."""
    msg, types = mime.message_and_types(raw)
    for part in msg.walk():
        assert types.get(id(part), part.get_content_type()) == part.get_content_type()


@FUZZ
@given(mutated_fixture())
def test_headers_only_reading_gives_the_full_parse_headers(raw: bytes) -> None:
    """A quoted original read header-block-only has the headers a full email.message_from_string gives."""
    text = raw.decode("ascii", "surrogateescape")
    assert mime.headers_from_string(text).items() == email.message_from_string(text).items()


_CT_ATOMS = ["multipart/mixed", ";", " ", "boundary=", "BOUNDARY =", '"', "abc", "\\", "<", ">", "x=y", "\n\t", "=",
             "boundary", "'", 'b"c', " ;", 'charset="a;b"', "boundary*=us-ascii''x", "boundary*0=a", "\xe9"]  # fmt: skip


@FUZZ
@given(st.lists(st.sampled_from(_CT_ATOMS), min_size=1, max_size=10).map("".join))
def test_boundary_of_a_content_type_is_what_get_boundary_says(value: str) -> None:
    """Quoted, bracketed, repeated, escaped and RFC 2231 boundaries: the library's answer, or the library asked."""
    msg = email.message.Message()
    msg["Content-Type"] = "x"
    vars(msg)["_headers"] = [("Content-Type", value)]
    found = mime.boundary_of(value)
    assert found is mime._ASK or found == msg.get_boundary()


@FUZZ
@given(st.text(alphabet="ab\r\n", max_size=8))
def test_line_ending_cut_is_what_feedparser_regex_finds(text: str) -> None:
    """The trailing line ending cut from payloads and preambles is the one ``(\\r\\n|\\r|\\n)\\Z`` finds."""
    m = re.search(r"(\r\n|\r|\n)\Z", text)
    assert mime._eol_length(text) == (len(m.group(0)) if m else 0)
