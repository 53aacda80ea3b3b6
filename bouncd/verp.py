"""Signed return paths (VERP): the envelope sender of outgoing mail names the contact and carries an HMAC.

Form, for contact ``john.doe@example.org`` with prefix ``bounces`` and domain ``bounce.example.com``::

    bounces+john.doe=example.org=k3p7q2xa5mz4d6ws@bounce.example.com
            └ local ┘ └ domain ┘ └── signature ─┘

The contact is encoded as in classic VERP (``local=domain``; D. J. Bernstein, "Variable envelope return
paths", 1997) and the signature follows a second ``=``. A domain always contains a dot and a signature
never does, so a signed return path never reads as an unsigned one. The signature is the first 80 bits of
HMAC-SHA256(secret, ``"bouncd-verp-v1:" + address``), base32 lower-case: MTAs may change the case of an
envelope address (RFC 5321 section 2.4 lets them), so everything is compared lower-cased.

A bounce whose envelope recipient verifies identifies its contact for sure, even when the DSN body is
garbled. Key rotation: sign with ``secret``; accept ``secret`` or ``previous_secret``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

import structlog

from bouncd.address import normalize_address
from bouncd.config import VerpSettings
from bouncd.errors import ConfigError, UsageError

log = structlog.get_logger("bouncd.verp")

SIGNATURE_CHARS = 16  # 16 base32 characters = 80 bits: far beyond online guessing
_B32 = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_CONTEXT = b"bouncd-verp-v1:"


class VerpStatus(StrEnum):
    """What an envelope recipient turned out to be."""

    SIGNED = "signed"  # a VERP form whose signature verifies
    INVALID = "invalid"  # a signed VERP form whose signature does not verify (forged or wrong key)
    UNSIGNED = "unsigned"  # a VERP form without a signature
    PLAIN = "plain"  # not a VERP form at all


@dataclass(frozen=True, slots=True)
class VerpResult:
    """The outcome of reading one envelope recipient."""

    status: VerpStatus
    contact: str | None = None  # the contact address the return path names (trust it only when SIGNED)


def _sign(secret: str, address: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), _CONTEXT + address.encode("utf-8"), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode("ascii").lower()[:SIGNATURE_CHARS]


def encode(settings: VerpSettings, address: str) -> str:
    """The signed return path for ``address``; raises UsageError for a non-address, ConfigError without a secret."""
    if not settings.secret:
        raise ConfigError("[verp] secret is not set (config file or BOUNCD_VERP_SECRET)")
    contact = normalize_address(address)
    if contact is None or contact != address.strip().strip("<>").lower():
        raise UsageError(f"not a plain email address: {address!r}")
    local, _, domain = contact.rpartition("@")
    return f"{settings.local_prefix}+{local}={domain}={_sign(settings.secret, contact)}@{settings.domain}"


def is_verp_form(settings: VerpSettings, envelope_recipient: str) -> bool:
    """True when the address is ``PREFIX+anything@VERP_DOMAIN`` (signed or not)."""
    rcpt = envelope_recipient.strip().strip("<>").lower()
    local, at, domain = rcpt.rpartition("@")
    return bool(at) and domain == settings.domain.lower() and local.startswith(settings.local_prefix.lower() + "+")


def inspect(settings: VerpSettings, envelope_recipient: str | None) -> VerpResult:
    """Read a return path: signed and valid, signed but invalid, unsigned VERP, or not VERP at all."""
    if not envelope_recipient or not is_verp_form(settings, envelope_recipient):
        return VerpResult(VerpStatus.PLAIN)
    rcpt = envelope_recipient.strip().strip("<>").lower()
    token = rcpt.rpartition("@")[0][len(settings.local_prefix) + 1 :]
    head, _, last = token.rpartition("=")
    if head and "." not in last and len(last) == SIGNATURE_CHARS and set(last) <= _B32:
        local, eq, domain = head.rpartition("=")
        contact = normalize_address(f"{local}@{domain}") if eq and local else None
        if contact is None:
            return VerpResult(VerpStatus.INVALID)
        for secret in (settings.secret, settings.previous_secret):
            if secret and hmac.compare_digest(_sign(secret, contact), last):
                return VerpResult(VerpStatus.SIGNED, contact)
        return VerpResult(VerpStatus.INVALID, contact)
    contact = normalize_address(head + "@" + last) if head else None
    return VerpResult(VerpStatus.UNSIGNED, contact)


def verify(settings: VerpSettings, envelope_recipient: str | None) -> str | None:
    """The contact named by a signed return path when its HMAC verifies (current or previous key), else None.

    A signed form that does not verify is logged as ``verp.invalid``: it is a forgery, a mangled address
    or a key that has been rotated out.
    """
    result = inspect(settings, envelope_recipient)
    if result.status is VerpStatus.INVALID:
        log.warning("verp.invalid", rcpt=envelope_recipient, contact=result.contact)
    return result.contact if result.status is VerpStatus.SIGNED else None
