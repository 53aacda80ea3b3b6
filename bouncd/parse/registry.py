"""The ordered list of detectors. Order matters: specific formats before generic ones."""

from __future__ import annotations

from bouncd.parse.arf import ARF, NonStandardComplaint
from bouncd.parse.autoreply import AutoReply
from bouncd.parse.base import Detector
from bouncd.parse.dragonfly import DragonFly
from bouncd.parse.dsn import RFC3464
from bouncd.parse.embedded import EmbeddedDSN
from bouncd.parse.exim import Exim
from bouncd.parse.fallback import FluflFallback
from bouncd.parse.opensmtpd import OpenSMTPD
from bouncd.parse.qmail import Qmail
from bouncd.parse.sendmail import Sendmail
from bouncd.parse.yahoo import Yahoo

# Non-standard MTA families, most specific gate first. They run after RFC3464 and before the
# auto-reply detector (Exim delay warnings and Mail.ru carry Auto-Submitted: auto-replied).
TEXT_FAMILIES: tuple[Detector, ...] = (
    DragonFly(),
    Qmail(),
    Yahoo(),
    OpenSMTPD(),
    Exim(),
    Sendmail(),
)

DETECTORS: tuple[Detector, ...] = (
    ARF(),
    NonStandardComplaint(),
    RFC3464(explainers=TEXT_FAMILIES),
    EmbeddedDSN(),
    *TEXT_FAMILIES,
    AutoReply(),
    FluflFallback(),
)
