"""RFC 3463 enhanced status codes and RFC 5321 reply codes -> reason, when the text says nothing clearer.

Status codes alone mislead (``5.2.2`` mailbox full is temporary in practice; ``4.1.1`` can be a dead
address), so these rules run only after the text rules, and the reason (never the class) decides hardness.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StatusRule:
    """``status`` is an exact X.Y.Z or a subject prefix ``*.Y.Z``; class-independent unless given."""

    id: str
    status: str
    reason: str


# Subject.detail (RFC 3463 §3, RFC 7505 §4.2 for X.1.10, RFC 7372 for X.7.2x), class-independent.
STATUS_RULES: tuple[StatusRule, ...] = (
    StatusRule("status.x11-bad-mailbox", "1.1", "userunknown"),
    StatusRule("status.x12-bad-host", "1.2", "hostunknown"),
    StatusRule("status.x13-bad-syntax", "1.3", "userunknown"),
    StatusRule("status.x16-moved", "1.6", "hasmoved"),
    StatusRule("status.x17-bad-sender", "1.7", "rejected"),
    StatusRule("status.x18-bad-sender-domain", "1.8", "rejected"),
    StatusRule("status.x110-null-mx", "1.10", "notaccept"),
    StatusRule("status.x21-disabled", "2.1", "suspend"),
    StatusRule("status.x22-full", "2.2", "mailboxfull"),
    StatusRule("status.x23-too-long", "2.3", "exceedlimit"),
    StatusRule("status.x24-list-expansion", "2.4", "systemerror"),
    StatusRule("status.x31-system-full", "3.1", "systemfull"),
    StatusRule("status.x32-not-accepting", "3.2", "systemerror"),
    StatusRule("status.x33-feature", "3.3", "systemerror"),
    StatusRule("status.x34-too-big", "3.4", "mesgtoobig"),
    StatusRule("status.x35-misconfigured", "3.5", "systemerror"),
    StatusRule("status.x40-network", "4.0", "networkerror"),
    StatusRule("status.x41-no-answer", "4.1", "networkerror"),
    StatusRule("status.x42-bad-connection", "4.2", "networkerror"),
    StatusRule("status.x43-directory", "4.3", "systemerror"),
    StatusRule("status.x44-no-route", "4.4", "hostunknown"),
    StatusRule("status.x45-congestion", "4.5", "systemerror"),
    StatusRule("status.x46-loop", "4.6", "networkerror"),
    StatusRule("status.x47-expired", "4.7", "expired"),
    StatusRule("status.x50-protocol", "5.0", "syntaxerror"),
    StatusRule("status.x51-bad-command", "5.1", "syntaxerror"),
    StatusRule("status.x52-syntax", "5.2", "syntaxerror"),
    StatusRule("status.x53-too-many-rcpts", "5.3", "toomanyconn"),
    StatusRule("status.x54-bad-args", "5.4", "syntaxerror"),
    StatusRule("status.x60-content", "6.0", "contenterror"),
    StatusRule("status.x61-media", "6.1", "contenterror"),
    StatusRule("status.x62-conversion", "6.2", "contenterror"),
    StatusRule("status.x63-conversion", "6.3", "contenterror"),
    StatusRule("status.x65-conversion-failed", "6.5", "contenterror"),
    StatusRule("status.x71-not-authorised", "7.1", "rejected"),
    StatusRule("status.x72-list-expansion", "7.2", "systemerror"),
    StatusRule("status.x74-security", "7.4", "securityerror"),
    StatusRule("status.x75-crypto", "7.5", "securityerror"),
    StatusRule("status.x76-crypto", "7.6", "securityerror"),
    StatusRule("status.x77-integrity", "7.7", "securityerror"),
    StatusRule("status.x78-auth", "7.8", "securityerror"),
    StatusRule("status.x79-auth-mech", "7.9", "securityerror"),
    StatusRule("status.x710-encryption", "7.10", "securityerror"),
    StatusRule("status.x711-tls", "7.11", "securityerror"),
    StatusRule("status.x713-suspended", "7.13", "suspend"),
    StatusRule("status.x714-trust", "7.14", "securityerror"),
    StatusRule("status.x715-auth", "7.15", "securityerror"),
    StatusRule("status.x717-mailbox-owner", "7.17", "suspend"),
    StatusRule("status.x718-list-owner", "7.18", "suspend"),
    StatusRule("status.x720-dkim", "7.20", "authfailure"),
    StatusRule("status.x721-dkim", "7.21", "authfailure"),
    StatusRule("status.x722-dkim", "7.22", "authfailure"),
    StatusRule("status.x723-spf", "7.23", "authfailure"),
    StatusRule("status.x724-spf", "7.24", "authfailure"),
    StatusRule("status.x725-ptr", "7.25", "requireptr"),
    StatusRule("status.x726-auth", "7.26", "authfailure"),
    StatusRule("status.x727-null-mx-sender", "7.27", "notaccept"),
)

_BY_DETAIL = {r.status: r for r in STATUS_RULES}


def reason_for_status(status: str | None) -> StatusRule | None:
    """The status rule for an X.Y.Z code, or None for generic codes (X.0.0) and unknown ones."""
    if not status:
        return None
    parts = status.split(".")
    if len(parts) != 3:
        return None
    return _BY_DETAIL.get(f"{parts[1]}.{parts[2]}")
