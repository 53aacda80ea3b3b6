"""The daemon's commands: config check, verp encode, import (mbox, maildir, .eml folder; idempotent)."""

from __future__ import annotations

import json
import mailbox
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bouncd import verp
from bouncd.cli import main
from bouncd.config import VerpSettings
from tests.conftest import HARD, MAILBOX_FULL, dsn_for, make_arf

NOW = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("BOUNCD_CONFIG", "BOUNCD_DATABASE_URL", "BOUNCD_VERP_SECRET"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./config/bouncd.toml here: built-in defaults


def test_config_check_prints_effective_settings_with_secrets_masked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """config check --json shows every section, the env override applied, and never the secret."""
    monkeypatch.setenv("BOUNCD_VERP_SECRET", "hunter2")
    monkeypatch.setenv("BOUNCD_SMTP_LISTEN", "127.0.0.1:2600")
    assert main(["config", "check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["smtp"]["listen"] == "127.0.0.1:2600"
    assert data["verp"]["secret"] == "***"
    assert set(data) >= {"database", "policy", "smtp", "verp", "metrics", "processing"}


def test_config_check_reports_errors_in_plain_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad file exits 1 with one line naming the key, no traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[smtp]\nmax_connections = "lots"\n')
    assert main(["config", "check", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "[smtp] max_connections must be a whole number" in err and "Traceback" not in err


def test_verp_encode_prints_a_return_path_that_verifies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """verp encode uses the configured secret and domain; the result verifies to the contact."""
    monkeypatch.setenv("BOUNCD_VERP_SECRET", "k1")
    monkeypatch.setenv("BOUNCD_VERP_DOMAIN", "rp.example.org")
    assert main(["verp", "encode", "Jane@Example.com"]) == 0
    rp = capsys.readouterr().out.strip()
    assert rp.endswith("@rp.example.org")
    assert verp.verify(VerpSettings(secret="k1", domain="rp.example.org"), rp) == "jane@example.com"


def test_verp_encode_without_secret_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a secret, verp encode exits 1 and says which setting is missing."""
    assert main(["verp", "encode", "jane@example.com"]) == 1
    assert "secret" in capsys.readouterr().err


def _write_sources(tmp_path: Path) -> dict[str, Path]:
    msgs = [
        dsn_for(HARD, "gone@example.net", NOW),
        dsn_for(MAILBOX_FULL, "full@example.net", NOW),
        make_arf("angry@example.net", NOW),
    ]
    eml = tmp_path / "eml"
    eml.mkdir()
    for i, raw in enumerate(msgs):
        (eml / f"{i}.eml").write_bytes(raw)
    mbox_path = tmp_path / "bounces.mbox"
    mb = mailbox.mbox(str(mbox_path))
    for raw in msgs:
        mb.add(raw)
    mb.close()
    md_path = tmp_path / "Maildir"
    md = mailbox.Maildir(str(md_path))
    for raw in msgs:
        md.add(raw)
    return {"eml": eml, "mbox": mbox_path, "maildir": md_path}


@pytest.mark.parametrize("fmt", ["eml", "mbox", "maildir"])
def test_import_stores_and_processes_once(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    """import of each archive format stores and processes every message; a second run changes nothing."""
    src = _write_sources(tmp_path)[fmt]
    db = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    assert main(["import", str(src), "--db", db, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first == {"read": 3, "stored": 3, "duplicates": 0, "failed": 0, "dnc_raised": 2}
    assert main(["import", str(src), "--db", db, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second == {"read": 3, "stored": 0, "duplicates": 3, "failed": 0, "dnc_raised": 0}
    assert main(["contact", "show", "gone@example.net", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dnc"] is True


def test_import_of_a_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path that does not exist exits 2 with a clear message."""
    assert main(["import", str(tmp_path / "nope"), "--db", f"sqlite:///{tmp_path / 'b.sqlite3'}"]) == 2
    assert "no such file or directory" in capsys.readouterr().err
