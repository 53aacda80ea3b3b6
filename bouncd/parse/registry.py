"""The ordered list of detectors. Order matters: specific formats before generic ones."""

from __future__ import annotations

from bouncd.parse.arf import ARF, NonStandardComplaint
from bouncd.parse.autoreply import AutoReply
from bouncd.parse.base import Detector
from bouncd.parse.dsn import RFC3464
from bouncd.parse.fallback import FluflFallback

DETECTORS: tuple[Detector, ...] = (
    ARF(),
    NonStandardComplaint(),
    RFC3464(),
    # Non-standard MTA families go here, before the auto-reply and fallback detectors.
    AutoReply(),
    FluflFallback(),
)
