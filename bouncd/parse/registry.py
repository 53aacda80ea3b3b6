"""The ordered list of detectors. Order matters: specific formats before generic ones."""

from __future__ import annotations

from bouncd.parse.arf import ARF, NonStandardComplaint
from bouncd.parse.autoreply import AutoReply
from bouncd.parse.base import Detector
from bouncd.parse.dragonfly import DragonFly
from bouncd.parse.dsn import RFC3464
from bouncd.parse.fallback import FluflFallback

DETECTORS: tuple[Detector, ...] = (
    ARF(),
    NonStandardComplaint(),
    RFC3464(),
    # Non-standard MTA families: before the auto-reply detector, because several of them
    # (Exim delay warnings, Mail.ru) carry Auto-Submitted: auto-replied.
    DragonFly(),
    AutoReply(),
    FluflFallback(),
)
