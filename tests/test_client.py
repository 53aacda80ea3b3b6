"""The API other apps import: is_contactable, record_unsubscribe, set_dnc, clear_dnc (both backends)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from bouncd import client
from bouncd.client import Client
from bouncd.db import repo
from bouncd.db.session import transaction
from bouncd.errors import NotFound, UsageError


@pytest.fixture
def api(engine: Engine) -> Client:
    """A client on the test database."""
    return Client(engine=engine)


def test_unknown_addresses_are_contactable(api: Client) -> None:
    """No record says otherwise."""
    assert api.is_contactable("new@example.com")


def test_dnc_covers_marketing_on_every_channel_and_exempts_transactional(api: Client) -> None:
    """DNC stops broadcasts/autoresponders/list mail and SMS; receipts and password resets still go."""
    api.set_dnc("Ann@Example.com", note="asked on the phone", actor="support")
    assert not api.is_contactable("ann@example.com")
    assert not api.is_contactable("ann@example.com", channel="sms")
    assert api.is_contactable("ann@example.com", category="transactional")
    assert api.is_contactable("ann@example.com", category="transactional", channel="sms")


def test_clearing_dnc_restores_the_contact_exactly(api: Client, engine: Engine) -> None:
    """dnc off: contactable again, same contact row, the trail keeps both entries."""
    api.set_dnc("ann@example.com", note="complained by phone")
    with transaction(engine) as s:
        before = repo.find_contact(s, "ann@example.com")
    change = api.clear_dnc("ann@example.com", note="asked to be mailed again")
    assert change.changed and not change.dnc
    assert api.is_contactable("ann@example.com")
    with transaction(engine) as s:
        after = repo.find_contact(s, "ann@example.com")
        assert after is not None and before is not None
        assert (after.id, after.address, after.external_id, after.created_at) == (
            before.id, before.address, before.external_id, before.created_at
        )
        assert [(t.action, t.source) for t, _ in repo.contact_trail(s, after.id)] == [("on", "manual"), ("off", "manual")]


def test_record_unsubscribe_raises_dnc_with_source_unsubscribe(api: Client, engine: Engine) -> None:
    """never_contact=True is a DNC with source 'unsubscribe'; repeating it writes nothing more."""
    assert api.record_unsubscribe("bob@example.com", note="unsubscribe link").changed
    assert not api.record_unsubscribe("bob@example.com", note="again").changed
    assert not api.is_contactable("bob@example.com")
    with transaction(engine) as s:
        contact = repo.find_contact(s, "bob@example.com")
        assert contact is not None and contact.dnc_source == "unsubscribe"
        assert len(repo.contact_trail(s, contact.id)) == 1


def test_an_unsubscribe_that_is_not_never_contact_leaves_dnc_alone(api: Client) -> None:
    """List-level unsubscribes stay the app's business."""
    change = api.record_unsubscribe("carol@example.com", never_contact=False)
    assert not change.changed and api.is_contactable("carol@example.com")


def test_clearing_an_unknown_address_says_so(api: Client) -> None:
    """An unknown address is an error, not a silent no-op."""
    with pytest.raises(NotFound, match="unknown address"):
        api.clear_dnc("nobody@example.com", note="x")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.is_contactable("not-an-address"), "not an email address"),
        (lambda c: c.is_contactable("a@example.com", category="newsletter"), "category"),
        (lambda c: c.is_contactable("a@example.com", channel="fax"), "channel"),
        (lambda c: c.set_dnc("a@example.com", note="  "), "note is required"),
        (lambda c: c.set_dnc("a@example.com", note="x", source="whim"), "unknown DNC source"),
    ],
    ids=["bad address", "bad category", "bad channel", "empty note", "bad source"],
)
def test_bad_arguments_are_usage_errors(api: Client, call: object, message: str) -> None:
    """Bad input gets a clear error."""
    with pytest.raises(UsageError, match=message):
        call(api)  # type: ignore[operator]


def test_module_functions_use_the_configured_database(monkeypatch: pytest.MonkeyPatch, db_url: str, engine: Engine) -> None:
    """bouncd.client.is_contactable() & co. read BOUNCD_DATABASE_URL."""
    monkeypatch.setenv("BOUNCD_DATABASE_URL", db_url)
    client.default_client.cache_clear()
    try:
        client.set_dnc("dave@example.com", note="test")
        assert not client.is_contactable("dave@example.com")
        client.clear_dnc("dave@example.com", note="test")
        assert client.is_contactable("dave@example.com")
    finally:
        client.default_client().engine.dispose()
        client.default_client.cache_clear()


def test_an_external_id_links_the_contact_and_leaves_dnc_alone(api: Client, engine: Engine) -> None:
    """Apps may store their own id on the contact; it shows in the status view."""
    api.set_dnc("erin@example.com", note="asked")
    api.set_external_id("erin@example.com", "crm-42")
    from sqlalchemy import text

    with engine.connect() as conn:
        row = conn.execute(text("SELECT external_id, dnc FROM contact_status WHERE address = 'erin@example.com'")).one()
    assert row.external_id == "crm-42" and bool(row.dnc)
    with pytest.raises(UsageError):
        api.set_external_id("erin@example.com", "")
