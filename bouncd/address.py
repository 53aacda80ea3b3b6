"""Email address normalisation shared by the parser, the store and the client API."""

from __future__ import annotations

import re

_PREFIX = re.compile(r"^\s*(?:rfc822|rfc-822|utf-8|x-local|local)\s*;\s*", re.IGNORECASE)
_ANGLE = re.compile(r"<([^<>\s]*@[^<>\s]*)>")
_BARE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+@[A-Za-z0-9][A-Za-z0-9.\-]*[A-Za-z0-9]")


def normalize_address(text: str | None) -> str | None:
    """Return the address in ``text`` as ``local@domain``, lower-cased, or None when there is none.

    Strips RFC 3464 address-type prefixes (``rfc822;``), angle brackets, quotes and trailing dots.
    Addresses are compared lower-cased everywhere in bouncd: mailbox providers treat local parts
    case-insensitively in practice, and one contact must not become two.
    """
    if not text:
        return None
    s = _PREFIX.sub("", text.strip())
    m = _ANGLE.search(s)
    if m and "@" in m.group(1):
        s = m.group(1)
    s = s.strip().strip("'\"")
    m2 = _BARE.search(s)
    if not m2:
        return None
    local, _, domain = m2.group(0).rpartition("@")
    local = local.strip(".'\"")
    domain = domain.strip(".").lower()
    if not local or "." not in domain:
        return None
    return f"{local.lower()}@{domain}"


def is_address(text: str | None) -> bool:
    """True when ``text`` holds something that normalises to an address."""
    return normalize_address(text) is not None
