"""What other apps import: check a contact before sending, record unsubscribes, set or clear DNC.

DNC is a flag with a trail, never an unsubscribe: clearing it restores the contact exactly as before.
It covers marketing mail in every form (broadcasts, autoresponders, list mail) and SMS; transactional
mail (receipts, password resets) is exempt.

::

    from bouncd.client import Client
    bouncd = Client("postgresql://bouncd@db/bouncd")
    if bouncd.is_contactable("ann@example.com"):
        ...

The module-level functions use the database from the bouncd configuration (``BOUNCD_DATABASE_URL`` or
``config/bouncd.toml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bouncd.address import normalize_address
from bouncd.config import VerpSettings, load_settings
from bouncd.db import repo
from bouncd.db.models import TRAIL_SOURCES
from bouncd.db.session import make_engine, transaction
from bouncd.errors import NotFound, UsageError

CATEGORIES = ("marketing", "transactional")
CHANNELS = ("email", "sms")


@dataclass(frozen=True, slots=True)
class DncChange:
    """The result of a set/clear request: whether a trail entry was written, and the state after."""

    address: str
    dnc: bool
    changed: bool
    trail_id: int | None = None


def require_address(text: str) -> str:
    """The normalised address, or UsageError saying the input is not one."""
    address = normalize_address(text)
    if address is None:
        raise UsageError(f"not an email address: {text!r}")
    return address


def apply_dnc(
    session: Session,
    address: str,
    *,
    on: bool,
    source: str,
    actor: str,
    note: str,
    now: datetime,
    create: bool = True,
) -> DncChange:
    """Switch DNC on or off for ``address`` inside ``session``; no trail entry when it is already so."""
    if source not in TRAIL_SOURCES:
        raise UsageError(f"unknown DNC source {source!r}; one of: {', '.join(TRAIL_SOURCES)}")
    if not note.strip():
        raise UsageError("a note is required: say why")
    if not create and repo.find_contact(session, address) is None:
        raise NotFound(f"unknown address: {address} (no contact recorded)")
    contact = repo.lock_contact(session, address, now)
    if contact.dnc == on:
        return DncChange(address, on, False)
    entry = repo.append_trail(session, contact, action="on" if on else "off", source=source, actor=actor, note=note, at=now)
    return DncChange(address, on, True, entry.id)


class Client:
    """A handle on the shared bouncd database for other applications."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        """Connect to ``url`` (or reuse ``engine``); default: the configured bouncd database."""
        self.engine = engine or make_engine(url or load_settings().database.url)

    def is_contactable(self, address: str, category: str = "marketing", channel: str = "email") -> bool:
        """True unless the contact is DNC; transactional mail is always allowed; unknown addresses are contactable."""
        if category not in CATEGORIES:
            raise UsageError(f"category must be one of {', '.join(CATEGORIES)}, not {category!r}")
        if channel not in CHANNELS:
            raise UsageError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
        addr = require_address(address)
        if category == "transactional":
            return True
        with transaction(self.engine, readonly=True) as session:
            contact = repo.find_contact(session, addr)
            return contact is None or not contact.dnc

    def record_unsubscribe(
        self, address: str, never_contact: bool = True, note: str = "unsubscribed", actor: str = "app"
    ) -> DncChange:
        """Record an unsubscribe; ``never_contact`` raises DNC (source ``unsubscribe``), otherwise only the contact is kept.

        List-level unsubscribes stay the app's business: bouncd records the contacts who must never be
        contacted again, with a trail entry saying who asked and why.
        """
        addr = require_address(address)
        now = datetime.now(UTC)
        with transaction(self.engine) as session:
            if not never_contact:
                contact = repo.lock_contact(session, addr, now)
                return DncChange(addr, contact.dnc, False)
            return apply_dnc(session, addr, on=True, source="unsubscribe", actor=actor, note=note, now=now)

    def set_dnc(self, address: str, note: str, actor: str = "app", source: str = "manual") -> DncChange:
        """Switch DNC on, with a trail entry (nothing written if it is already on)."""
        addr = require_address(address)
        with transaction(self.engine) as session:
            return apply_dnc(session, addr, on=True, source=source, actor=actor, note=note, now=datetime.now(UTC))

    def clear_dnc(self, address: str, note: str, actor: str = "app") -> DncChange:
        """Switch DNC off (source ``manual``); the contact is then exactly as before. Unknown addresses raise NotFound."""
        addr = require_address(address)
        with transaction(self.engine) as session:
            return apply_dnc(
                session, addr, on=False, source="manual", actor=actor, note=note, now=datetime.now(UTC), create=False
            )

    def set_external_id(self, address: str, external_id: str | None) -> None:
        """Link the contact to the app's own id (created if new); None removes the link. DNC is untouched."""
        addr = require_address(address)
        if external_id is not None and not 0 < len(external_id) <= 200:
            raise UsageError("external_id must be 1 to 200 characters")
        with transaction(self.engine) as session:
            repo.lock_contact(session, addr, datetime.now(UTC)).external_id = external_id


@cache
def default_client() -> Client:
    """The client on the configured database (created on first use)."""
    return Client()


def is_contactable(address: str, category: str = "marketing", channel: str = "email") -> bool:
    """``Client.is_contactable`` on the configured database."""
    return default_client().is_contactable(address, category, channel)


def record_unsubscribe(address: str, never_contact: bool = True, note: str = "unsubscribed", actor: str = "app") -> DncChange:
    """``Client.record_unsubscribe`` on the configured database."""
    return default_client().record_unsubscribe(address, never_contact, note, actor)


def set_dnc(address: str, note: str, actor: str = "app", source: str = "manual") -> DncChange:
    """``Client.set_dnc`` on the configured database."""
    return default_client().set_dnc(address, note, actor, source)


def clear_dnc(address: str, note: str, actor: str = "app") -> DncChange:
    """``Client.clear_dnc`` on the configured database."""
    return default_client().clear_dnc(address, note, actor)


def verp_address(address: str, settings: VerpSettings | None = None) -> str:
    """The signed return path (envelope sender) to put on mail for ``address``: ``bounces+...=SIG@domain``.

    Uses ``[verp]`` from the bouncd configuration (``BOUNCD_VERP_SECRET``, ``BOUNCD_VERP_DOMAIN`` ...)
    unless ``settings`` is given. A bounce to it identifies the contact even when the DSN is garbled.
    """
    from bouncd import verp

    return verp.encode(settings if settings is not None else load_settings().verp, address)
