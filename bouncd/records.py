"""Values passed between layers: frozen dataclasses and enums, no behaviour beyond conversion."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """What a whole message is."""

    BOUNCE = "bounce"
    FEEDBACK = "feedback"  # RFC 5965 ARF complaint
    VACATION = "vacation"  # RFC 3834 auto-reply
    DELIVERED = "delivered"  # success DSN
    UNKNOWN = "unknown"  # not recognised, or unreadable


class Reason(StrEnum):
    """Reason vocabulary shared with Sisimai so results compare across tools."""

    AUTHFAILURE = "authfailure"
    BADREPUTATION = "badreputation"
    BLOCKED = "blocked"
    CONTENTERROR = "contenterror"
    DELIVERED = "delivered"
    EXCEEDLIMIT = "exceedlimit"
    EXPIRED = "expired"
    FEEDBACK = "feedback"
    FILTERED = "filtered"
    HASMOVED = "hasmoved"
    HOSTUNKNOWN = "hostunknown"
    MAILBOXFULL = "mailboxfull"
    MAILERERROR = "mailererror"
    MESGTOOBIG = "mesgtoobig"
    NETWORKERROR = "networkerror"
    NORELAYING = "norelaying"
    NOTACCEPT = "notaccept"
    NOTCOMPLIANTRFC = "notcompliantrfc"
    ONHOLD = "onhold"
    POLICYVIOLATION = "policyviolation"
    REJECTED = "rejected"
    REQUIREPTR = "requireptr"
    SECURITYERROR = "securityerror"
    SPAMDETECTED = "spamdetected"
    SPEEDING = "speeding"
    SUSPEND = "suspend"
    SYNTAXERROR = "syntaxerror"
    SYSTEMERROR = "systemerror"
    SYSTEMFULL = "systemfull"
    TOOMANYCONN = "toomanyconn"
    UNDEFINED = "undefined"
    USERUNKNOWN = "userunknown"
    VACATION = "vacation"
    VIRUSDETECTED = "virusdetected"


# Reasons that mean the address itself is dead (``notaccept`` only with a permanent status).
DEAD_ADDRESS_REASONS = frozenset({Reason.USERUNKNOWN, Reason.HOSTUNKNOWN, Reason.HASMOVED})


@dataclass(frozen=True, slots=True)
class Failure:
    """What a detector read for one recipient, before classification."""

    recipient: str | None
    action: str | None = None  # RFC 3464 Action: failed, delayed, delivered, relayed, expanded
    status: str | None = None  # RFC 3463 X.Y.Z
    reply_code: str | None = None  # RFC 5321 three digits
    diagnostic: str = ""  # the server's own words, unfolded
    remote_mta: str | None = None
    command: str | None = None  # SMTP command the failure answered: CONN HELO MAIL RCPT DATA
    reason_hint: str | None = None  # set when the format itself states the reason for sure
    hint_rule: str | None = None  # rule id backing reason_hint
    hint_evidence: str = ""  # text that backed reason_hint
    # RFC 3464 diagnostic-type of the Diagnostic-Code (lower case: "smtp", "x-unix", ...), when given;
    # "x-unix" means a local delivery program's words, not a remote server's
    diagnostic_type: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Reason and hardness of one failure, with the rule that decided it and the text it saw."""

    reason: str
    hard: bool
    rule: str
    evidence: str


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """One affected recipient of a report: what was read plus its verdict."""

    recipient: str | None
    action: str | None
    status: str | None
    reply_code: str | None
    diagnostic: str
    remote_mta: str | None
    command: str | None
    reason: str
    hard: bool
    rule: str
    evidence: str


@dataclass(frozen=True, slots=True)
class Parsed:
    """What the parser found in a message, before classification."""

    kind: Kind
    detector: str
    failures: tuple[Failure, ...] = ()
    error: str | None = None
    original_message_id: str | None = None
    original_headers: tuple[tuple[str, str], ...] = ()
    arrival_date: datetime | None = None
    reporting_mta: str | None = None
    feedback_type: str | None = None  # ARF Feedback-Type


@dataclass(frozen=True, slots=True)
class Report:
    """The analysis of one message: its kind and one result per affected recipient."""

    kind: Kind
    detector: str
    results: tuple[RecipientResult, ...] = ()
    error: str | None = None
    original_message_id: str | None = None
    original_headers: tuple[tuple[str, str], ...] = ()
    envelope_recipient: str | None = None
    arrival_date: datetime | None = None
    reporting_mta: str | None = None
    feedback_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (datetimes as ISO strings)."""
        out = dataclasses.asdict(self)
        out["kind"] = str(self.kind)
        out["arrival_date"] = self.arrival_date.isoformat() if self.arrival_date else None
        out["original_headers"] = [list(h) for h in self.original_headers]
        return out


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received message as it will be stored: raw bytes plus its SMTP envelope, peer and time."""

    raw: bytes
    received_at: datetime
    mail_from: str | None = None  # None or "" for the null reverse-path
    rcpt_tos: tuple[str, ...] = ()
    peer: str | None = None
    protocol: str = "smtp"  # smtp | lmtp | pipe | import | cli
