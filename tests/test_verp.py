"""Signed return paths: encode, verify with current and previous key, reject forgeries and unsigned forms."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from bouncd import verp
from bouncd.config import VerpSettings
from bouncd.errors import ConfigError, UsageError
from bouncd.verp import VerpStatus

KEYED = VerpSettings(secret="current-secret", domain="bounce.example.com")


def test_round_trip_names_the_contact() -> None:
    """A return path made by encode() verifies and yields the contact address, lower-cased."""
    rp = verp.encode(KEYED, "John.Doe@Example.ORG")
    assert rp.startswith("bounces+john.doe=example.org=")
    assert rp.endswith("@bounce.example.com")
    assert verp.verify(KEYED, rp) == "john.doe@example.org"


@pytest.mark.parametrize("address", ["a+tag@example.com", "x=y@example.com", "o'brien@example.co.uk", "a.b.c@sub.example.net"])
def test_round_trip_with_special_local_parts(address: str) -> None:
    """Local parts with +, =, ' and dots survive the encoding (the domain split is at the last '=')."""
    assert verp.verify(KEYED, verp.encode(KEYED, address)) == address


def test_case_changed_by_an_mta_still_verifies() -> None:
    """MTAs may upper-case envelope addresses (RFC 5321 section 2.4); the signature still verifies."""
    rp = verp.encode(KEYED, "jane@example.com")
    assert verp.verify(KEYED, rp.upper()) == "jane@example.com"
    assert verp.verify(KEYED, f"<{rp}>") == "jane@example.com"


def test_tampered_contact_is_invalid_and_logged() -> None:
    """Changing the contact in a signed return path breaks the HMAC: verify returns None and logs verp.invalid."""
    rp = verp.encode(KEYED, "jane@example.com").replace("jane", "june")
    with capture_logs() as logs:
        assert verp.verify(KEYED, rp) is None
    assert [e["event"] for e in logs] == ["verp.invalid"]
    assert logs[0]["contact"] == "june@example.com"
    assert verp.inspect(KEYED, rp).status is VerpStatus.INVALID


def test_wrong_key_is_invalid() -> None:
    """A return path signed with another secret does not verify."""
    other = VerpSettings(secret="someone-else", domain="bounce.example.com")
    assert verp.verify(KEYED, verp.encode(other, "jane@example.com")) is None


def test_previous_key_still_verifies_after_rotation() -> None:
    """Key rotation: mail signed with the old key verifies while it is configured as previous_secret."""
    old = VerpSettings(secret="old", domain="bounce.example.com")
    rp = verp.encode(old, "jane@example.com")
    rotated = VerpSettings(secret="new", previous_secret="old", domain="bounce.example.com")
    assert verp.verify(rotated, rp) == "jane@example.com"
    dropped = VerpSettings(secret="new", domain="bounce.example.com")
    assert verp.verify(dropped, rp) is None


def test_unsigned_verp_form_is_recognised_but_not_trusted() -> None:
    """Classic unsigned VERP names a contact but verify() returns None for it, without logging it as invalid."""
    rcpt = "bounces+jane=example.com@bounce.example.com"
    assert verp.inspect(KEYED, rcpt) == verp.VerpResult(VerpStatus.UNSIGNED, "jane@example.com")
    with capture_logs() as logs:
        assert verp.verify(KEYED, rcpt) is None
    assert logs == []


@pytest.mark.parametrize(
    "rcpt", ["bounces@bounce.example.com", "jane@example.com", "bounces+x=y.com=aaaaaaaaaaaaaaaa@other.com", "", None]
)
def test_plain_addresses_are_not_verp(rcpt: str | None) -> None:
    """Addresses that are not PREFIX+...@VERP_DOMAIN are plain, and verify() returns None."""
    assert verp.inspect(KEYED, rcpt).status is VerpStatus.PLAIN
    assert verp.verify(KEYED, rcpt) is None


def test_encode_needs_a_secret_and_an_address() -> None:
    """encode() refuses to sign without a secret, and refuses text that is not a plain address."""
    with pytest.raises(ConfigError, match="secret"):
        verp.encode(VerpSettings(), "jane@example.com")
    for bad in ("not an address", "Jane <jane@example.com>", "jane@localhost"):
        with pytest.raises(UsageError):
            verp.encode(KEYED, bad)


def test_client_verp_address_uses_the_configured_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """bouncd.client.verp_address signs with [verp] from the configuration (environment here)."""
    from bouncd.client import verp_address

    monkeypatch.setenv("BOUNCD_VERP_SECRET", "app-secret")
    monkeypatch.setenv("BOUNCD_VERP_DOMAIN", "rp.example.org")
    monkeypatch.delenv("BOUNCD_CONFIG", raising=False)
    rp = verp_address("Ann@Example.org")
    assert verp.verify(VerpSettings(secret="app-secret", domain="rp.example.org"), rp) == "ann@example.org"
    assert verp_address("ann@example.org", KEYED) == verp.encode(KEYED, "ann@example.org")
