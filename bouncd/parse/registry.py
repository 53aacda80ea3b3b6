"""The ordered list of detectors. Order matters: specific formats before generic ones."""

from __future__ import annotations

from bouncd.parse.amazonses import AmazonSESNotification
from bouncd.parse.arf import ARF, NonStandardComplaint
from bouncd.parse.autoreply import AutoReply
from bouncd.parse.base import Detector
from bouncd.parse.carriers import KDDI, EZweb
from bouncd.parse.dragonfly import DragonFly
from bouncd.parse.dsn import RFC3464
from bouncd.parse.embedded import EmbeddedDSN
from bouncd.parse.exchange import Exchange2003
from bouncd.parse.exim import Exim
from bouncd.parse.fallback import FluflFallback
from bouncd.parse.gateways import (
    FML,
    X2,
    X3,
    X4,
    X6,
    IMailServer,
    InterScanMSS,
    MailFoundry,
    MailMarshal,
    Smail,
    Verizon,
    Zoho,
)
from bouncd.parse.google import Gmail, GoogleGroups
from bouncd.parse.mfilter import MFilter
from bouncd.parse.notes import Domino, Notes
from bouncd.parse.office365 import Office365
from bouncd.parse.opensmtpd import OpenSMTPD
from bouncd.parse.postfix import Postfix
from bouncd.parse.qmail import Qmail
from bouncd.parse.sendmail import Sendmail
from bouncd.parse.yahoo import Yahoo

# Non-standard MTA families, most specific gate first. They run after RFC3464 and before the
# auto-reply detector (Exim delay warnings and Mail.ru carry Auto-Submitted: auto-replied).
TEXT_FAMILIES: tuple[Detector, ...] = (
    DragonFly(),
    GoogleGroups(),
    Gmail(),
    Qmail(),
    Yahoo(),
    OpenSMTPD(),
    Zoho(),
    Exim(),
    Sendmail(),
    Postfix(),
    Office365(),
    Exchange2003(),
    Notes(),
    Domino(),
    MFilter(),
    EZweb(),
    KDDI(),
    MailMarshal(),
    X2(),
    X3(),
    X4(),
    X6(),
    IMailServer(),
    InterScanMSS(),
    MailFoundry(),
    Smail(),
    Verizon(),
    FML(),
)

DETECTORS: tuple[Detector, ...] = (
    ARF(),
    NonStandardComplaint(),
    AmazonSESNotification(),
    RFC3464(explainers=TEXT_FAMILIES),
    EmbeddedDSN(explainers=TEXT_FAMILIES),
    *TEXT_FAMILIES,
    AutoReply(),
    FluflFallback(),
)
