"""Configuration: the shipped TOML documents every key with its default; env overrides; plain-words errors."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from bouncd.config import Settings, as_dict, load_settings
from bouncd.errors import ConfigError

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "bouncd.toml"


def test_shipped_file_equals_the_defaults() -> None:
    """config/bouncd.toml loads to exactly the built-in defaults: the documented values are the real ones."""
    assert load_settings(SHIPPED, env={}) == Settings()


def test_shipped_file_names_and_comments_every_key() -> None:
    """Every settings field appears in the shipped file, with a comment line right above it."""
    text = SHIPPED.read_text()
    data = tomllib.loads(text)
    lines = text.splitlines()
    for f in dataclasses.fields(Settings):
        value = getattr(Settings(), f.name)
        keys = [f.name] if not dataclasses.is_dataclass(value) else [g.name for g in dataclasses.fields(value)]
        for key in keys:
            section = data if not dataclasses.is_dataclass(value) else data[f.name]
            assert key in section, f"{f.name}.{key} missing from {SHIPPED.name}"
            idx = next(i for i, ln in enumerate(lines) if re.match(rf"{re.escape(key)}\s*=", ln))
            assert lines[idx - 1].startswith("#") or lines[idx - 2].startswith("#"), f"{key} has no comment"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    """BOUNCD_SECTION_KEY beats the file; lists are comma-separated; booleans read yes/no."""
    cfg = tmp_path / "b.toml"
    cfg.write_text('[smtp]\nlisten = "127.0.0.1:2600"\nbounce_domains = ["a.example"]\n')
    env = {
        "BOUNCD_SMTP_LISTEN": "0.0.0.0:25",
        "BOUNCD_SMTP_BOUNCE_DOMAINS": "b.example, c.example",
        "BOUNCD_SMTP_LMTP": "yes",
        "BOUNCD_DATABASE_URL": "sqlite:////tmp/x.db",
        "BOUNCD_PROCESSING_PROCESSES": "0",
    }
    s = load_settings(cfg, env=env)
    assert s.smtp.listen == "0.0.0.0:25"
    assert s.smtp.bounce_domains == ("b.example", "c.example")
    assert s.smtp.lmtp is True
    assert s.database.url == "sqlite:////tmp/x.db"
    assert s.processing.processes == 0


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('[smtp]\nlisten = "nowhere"\n', "HOST:PORT"),
        ("[smtp]\nmax_recipients = \"many\"\n", "whole number"),
        ("[smtp]\nallow_networks = [\"10.0.0.300/8\"]\n", "not an IP network"),
        ('[smtp]\ntls_cert = "/etc/cert.pem"\n', "set together"),
        ("[smtp]\nmax_line_bytes = 80\n", "at least 1001"),
        ("[smtp]\nlisen = \"x\"\n", "unknown key"),
        ("[policy]\nrequire_signed_return_path = true\n", "needs [verp] secret"),
        ('[metrics]\nlisten = "9125"\n', "[metrics] listen"),
        ('[verp]\nsecret = "a"\nprevious_secret = "a"\n', "must differ"),
        ("[processing]\npoll_seconds = 0\n", "more than 0"),
        ("[smtp\n", "not valid TOML"),
    ],
)
def test_bad_config_says_what_is_wrong(tmp_path: Path, toml: str, words: str) -> None:
    """Each mistake raises ConfigError whose message names the key and the problem."""
    cfg = tmp_path / "b.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert words in str(err.value)


def test_as_dict_masks_secrets() -> None:
    """Printing the effective settings never shows the VERP keys."""
    s = load_settings(SHIPPED, env={"BOUNCD_VERP_SECRET": "hunter2", "BOUNCD_VERP_PREVIOUS_SECRET": "hunter1"})
    d = as_dict(s)
    assert d["verp"]["secret"] == "***" and d["verp"]["previous_secret"] == "***"
    assert "hunter" not in repr(d)
