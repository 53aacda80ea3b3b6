"""RFC 3463 enhanced status codes and RFC 5321 reply codes -> reason, when the text says nothing clearer.

Status codes alone mislead (``5.2.2`` mailbox full is temporary in practice; ``5.1.0`` is "some address",
maybe the sender's; ``5.7.27`` is the *sender's* null MX), so these rules run after the text rules, and
the reason (never the class) decides hardness. Mapping follows the IANA registry descriptions and the
vocabulary Sisimai uses, with our own choices where a code does not prove the address is dead:

- ``X.1.0`` (other address status) and ``4.1.1``/``4.1.2`` (temporary) are not mapped: the text, the SMTP
  command or nothing decides.
- ``X.3.2`` (system not accepting network messages) is a system state, not a dead address: systemerror.
- ``X.7.27`` (RFC 7505 §4.2: the *sender* domain has a null MX) is about the sender: rejected.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StatusRule:
    """``status`` is an exact ``X.Y.Z`` code or a class-independent ``Y.Z`` detail."""

    id: str
    status: str
    reason: str


# Exact codes first (class-specific meaning), then class-independent details.
STATUS_RULES: tuple[StatusRule, ...] = (
    # Class-specific: the same detail means different things when temporary.
    StatusRule("status.5.1.1-bad-mailbox", "5.1.1", "userunknown"),
    StatusRule("status.5.1.2-bad-host", "5.1.2", "hostunknown"),
    StatusRule("status.5.1.3-bad-syntax", "5.1.3", "userunknown"),
    StatusRule("status.5.1.6-moved", "5.1.6", "hasmoved"),
    StatusRule("status.5.1.10-null-mx", "5.1.10", "notaccept"),  # RFC 7505 §4.2
    StatusRule("status.4.1.6-moved", "4.1.6", "hasmoved"),
    StatusRule("status.5.2.1-disabled", "5.2.1", "filtered"),
    StatusRule("status.4.2.1-disabled", "4.2.1", "suspend"),
    StatusRule("status.5.3.0-system", "5.3.0", "systemerror"),
    StatusRule("status.5.4.0-network", "5.4.0", "networkerror"),
    StatusRule("status.5.4.4-no-route", "5.4.4", "hostunknown"),
    StatusRule("status.4.4.4-no-route", "4.4.4", "networkerror"),
    StatusRule("status.4.7.1-not-authorised", "4.7.1", "blocked"),
    StatusRule("status.4.7.2-list-expansion", "4.7.2", "blocked"),
    StatusRule("status.5.7.1-not-authorised", "5.7.1", "securityerror"),
    StatusRule("status.5.7.2-list-expansion", "5.7.2", "securityerror"),
    # Class-independent details (RFC 3463 §3, RFC 7372 for X.7.2x).
    StatusRule("status.x.1.4-ambiguous", "1.4", "filtered"),
    StatusRule("status.x.1.7-bad-sender", "1.7", "rejected"),
    StatusRule("status.x.1.8-bad-sender-domain", "1.8", "rejected"),
    StatusRule("status.x.1.9-non-compliant", "1.9", "systemerror"),
    StatusRule("status.x.2.0-mailbox", "2.0", "filtered"),
    StatusRule("status.x.2.2-full", "2.2", "mailboxfull"),
    StatusRule("status.x.2.3-too-long", "2.3", "exceedlimit"),
    StatusRule("status.x.2.4-list-expansion", "2.4", "filtered"),
    StatusRule("status.x.3.1-system-full", "3.1", "systemfull"),
    StatusRule("status.x.3.2-not-accepting", "3.2", "systemerror"),
    StatusRule("status.x.3.3-feature", "3.3", "systemerror"),
    StatusRule("status.x.3.4-too-big", "3.4", "mesgtoobig"),
    StatusRule("status.x.3.5-misconfigured", "3.5", "systemerror"),
    StatusRule("status.x.4.1-no-answer", "4.1", "expired"),
    StatusRule("status.x.4.2-bad-connection", "4.2", "networkerror"),
    StatusRule("status.x.4.3-directory", "4.3", "systemerror"),
    StatusRule("status.x.4.5-congestion", "4.5", "systemfull"),
    StatusRule("status.x.4.6-loop", "4.6", "networkerror"),
    StatusRule("status.x.4.7-expired", "4.7", "expired"),
    StatusRule("status.x.4.8-ipv4", "4.8", "networkerror"),
    StatusRule("status.x.5.2-syntax", "5.2", "syntaxerror"),
    StatusRule("status.x.5.3-too-many-rcpts", "5.3", "toomanyconn"),
    StatusRule("status.x.5.4-bad-args", "5.4", "systemerror"),
    StatusRule("status.x.5.5-version", "5.5", "systemerror"),
    StatusRule("status.x.5.6-auth-line", "5.6", "syntaxerror"),
    StatusRule("status.x.7.5-crypto", "7.5", "securityerror"),
    StatusRule("status.x.7.6-crypto", "7.6", "securityerror"),
    StatusRule("status.x.7.7-integrity", "7.7", "securityerror"),
    StatusRule("status.x.7.8-auth", "7.8", "securityerror"),
    StatusRule("status.x.7.9-auth-mech", "7.9", "securityerror"),
    StatusRule("status.x.7.10-encryption", "7.10", "securityerror"),
    StatusRule("status.x.7.11-tls", "7.11", "securityerror"),
    StatusRule("status.x.7.13-suspended", "7.13", "suspend"),
    StatusRule("status.x.7.14-trust", "7.14", "securityerror"),
    StatusRule("status.x.7.15-priority", "7.15", "securityerror"),
    StatusRule("status.x.7.16-too-big", "7.16", "mesgtoobig"),
    StatusRule("status.x.7.17-owner-changed", "7.17", "hasmoved"),
    StatusRule("status.x.7.18-domain-owner-changed", "7.18", "hasmoved"),
    StatusRule("status.x.7.20-dkim", "7.20", "authfailure"),
    StatusRule("status.x.7.21-dkim", "7.21", "authfailure"),
    StatusRule("status.x.7.22-dkim", "7.22", "authfailure"),
    StatusRule("status.x.7.23-spf", "7.23", "authfailure"),
    StatusRule("status.x.7.24-spf", "7.24", "authfailure"),
    StatusRule("status.x.7.25-ptr", "7.25", "requireptr"),
    StatusRule("status.x.7.26-auth", "7.26", "authfailure"),
    StatusRule("status.x.7.27-sender-null-mx", "7.27", "rejected"),
    StatusRule("status.x.7.28-flood", "7.28", "spamdetected"),
    StatusRule("status.x.7.29-arc", "7.29", "authfailure"),
    StatusRule("status.x.7.30-requiretls", "7.30", "securityerror"),
    # Exchange Online extended details (three-digit, Microsoft's own namespace; learn.microsoft.com
    # "Non-delivery reports in Exchange Online"), class-specific by construction.
    StatusRule("status.4.4.312-ms-dns", "4.4.312", "networkerror"),
    StatusRule("status.5.4.312-ms-dns", "5.4.312", "networkerror"),
    StatusRule("status.4.4.316-ms-refused", "4.4.316", "expired"),
    StatusRule("status.5.4.316-ms-refused", "5.4.316", "expired"),
    StatusRule("status.5.4.300-ms-expired", "5.4.300", "expired"),
    StatusRule("status.5.7.124-ms-not-allowed-sender", "5.7.124", "rejected"),
    *(StatusRule(f"status.5.7.{n}-ms-sender-not-authenticated", f"5.7.{n}", "rejected") for n in range(133, 137)),
    *(StatusRule(f"status.5.7.{n}-ms-spam-abuse", f"5.7.{n}", "spamdetected") for n in range(501, 504)),
    *(StatusRule(f"status.5.7.{n}-ms-recipient-rule", f"5.7.{n}", "filtered") for n in (504, 505)),
    *(StatusRule(f"status.5.7.{n}-ms-blocked", f"5.7.{n}", "blocked") for n in (506, 507, 510)),
    StatusRule("status.5.7.508-ms-rate", "5.7.508", "toomanyconn"),
    StatusRule("status.5.7.509-ms-dmarc", "5.7.509", "authfailure"),
    StatusRule("status.5.7.511-ms-banned-sender", "5.7.511", "rejected"),
    StatusRule("status.5.7.512-ms-from-header", "5.7.512", "policyviolation"),
    *(StatusRule(f"status.5.7.{n}-ms-banned-ip", f"5.7.{n}", "blocked") for n in range(606, 650)),
    *(StatusRule(f"status.5.7.{n}-ms-unprovisioned", f"5.7.{n}", "toomanyconn") for n in range(700, 750)),
    *(StatusRule(f"status.4.7.{n}-ms-restricted", f"4.7.{n}", "blocked") for n in (*range(500, 700), *range(850, 900))),
    # Subject-only fallbacks (RFC 3463 §3.6, §3.8): media and security trouble in general.
    StatusRule("status.x.6-content", "6", "contenterror"),
    StatusRule("status.x.7-security", "7", "securityerror"),
)

_BY_CODE = {r.status: r for r in STATUS_RULES}

# Codes that name the cause so precisely that they beat the server's free text (RFC 3463 / 7372 / 7505).
DECISIVE = frozenset({"2.2", "2.3", "3.4", "7.20", "7.21", "7.22", "7.23", "7.24", "7.25", "7.26", "7.29", "1.7", "1.8"})


def _parts(status: str | None) -> tuple[str, str, str] | None:
    if not status:
        return None
    parts = status.split(".")
    if len(parts) != 3 or parts[0] not in ("4", "5") or not all(p.isdigit() for p in parts):
        return None
    return parts[0], str(int(parts[1])), str(int(parts[2]))


def is_decisive(status: str | None) -> bool:
    """True when the status detail alone names the reason precisely (full mailbox, SPF fail, ...)."""
    p = _parts(status)
    return p is not None and f"{p[1]}.{p[2]}" in DECISIVE


def reason_for_status(status: str | None) -> StatusRule | None:
    """The status rule for an X.Y.Z code (exact, then detail, then subject), or None for X.0.0 and unknown codes."""
    p = _parts(status)
    if p is None:
        return None
    cls, subject, detail = p
    if subject == "0":
        return None
    return (
        _BY_CODE.get(f"{cls}.{subject}.{detail}")
        or (_BY_CODE.get(f"{subject}.{detail}") if not _is_class_specific(subject, detail) else None)
        or _BY_CODE.get(subject)
    )


def _is_class_specific(subject: str, detail: str) -> bool:
    """Details mapped per class: the other class must not fall back to the class-independent rule."""
    return f"{subject}.{detail}" in _CLASS_SPECIFIC


_CLASS_SPECIFIC = frozenset(
    {f"{r.status.split('.')[1]}.{r.status.split('.')[2]}" for r in STATUS_RULES if r.status.count(".") == 2}
)
