"""TOML file -> frozen :class:`Settings`; ``BOUNCD_*`` environment variables override; no global config.

Every key and its default is documented in ``config/bouncd.toml``. Environment overrides use the
section and key in upper case: ``BOUNCD_DATABASE_URL``, ``BOUNCD_SMTP_LISTEN``, ``BOUNCD_POLICY_SOFT_BOUNCES``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bouncd.errors import ConfigError

# Rejections caused by our sending (IP, content, policy, authentication, reputation, rate): they say
# nothing about the recipient and must never count toward anyone's DNC.
OUR_SENDING_REASONS = frozenset(
    {"blocked", "spamdetected", "policyviolation", "authfailure", "badreputation", "speeding", "toomanyconn",
     "requireptr", "securityerror", "virusdetected", "contenterror", "norelaying", "rejected"}
)

DEFAULT_CONFIG_PATHS = (Path("config/bouncd.toml"), Path("/etc/bouncd/bouncd.toml"))


@dataclass(frozen=True)
class DatabaseSettings:
    """Where bouncd keeps everything."""

    url: str = "sqlite:///var/bouncd.sqlite3"


@dataclass(frozen=True)
class PolicySettings:
    """When bounces turn into Do Not Contact."""

    soft_bounces: int = 5  # soft bounces (on at least this many distinct days) that raise DNC
    soft_window_days: int = 30  # ... within this many days of arrival
    hard_bounce_raises_dnc: bool = True
    complaint_raises_dnc: bool = True
    require_signed_return_path: bool = False  # unsigned bounces are stored but never change DNC
    # Soft-bounce reasons that are the recipient's own condition and so count toward soft_bounces;
    # reasons caused by our sending (blocked, spamdetected, policyviolation, ...) must never be listed.
    counting_reasons: tuple[str, ...] = ("mailboxfull", "suspend", "expired")


@dataclass(frozen=True)
class SmtpSettings:
    """The listener."""

    listen: str = "127.0.0.1:2525"
    lmtp: bool = False
    bounce_domains: tuple[str, ...] = ("localhost",)
    bounce_addresses: tuple[str, ...] = ()
    max_message_bytes: int = 10 * 1024 * 1024
    max_recipients: int = 100
    max_connections: int = 256
    command_timeout: float = 60.0
    allow_networks: tuple[str, ...] = ()  # empty: any client
    tls_cert: str = ""
    tls_key: str = ""
    group_commit_ms: float = 0.0
    workers: int = 1
    hostname: str = ""  # name in the 220 greeting; empty: this host's FQDN
    max_line_bytes: int = 1024 * 1024  # real DSNs (Amazon SES, GMX) exceed RFC 5321's 1000


@dataclass(frozen=True)
class ProcessingSettings:
    """The loop that parses, classifies and applies policy to stored messages."""

    processes: int = 1  # processing processes started by serve; 0: another host or process does it
    batch: int = 100  # messages claimed per transaction
    poll_seconds: float = 1.0  # idle re-check for rows stored by other processes or hosts
    nice: int = 10  # niceness of the processing processes: accepting mail (the 250) comes first


@dataclass(frozen=True)
class VerpSettings:
    """Signed return paths."""

    secret: str = ""
    previous_secret: str = ""
    local_prefix: str = "bounces"
    domain: str = "localhost"


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus and health endpoint."""

    listen: str = ""  # e.g. "127.0.0.1:9125"; empty: off


@dataclass(frozen=True)
class Settings:
    """Everything bouncd reads from its configuration."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    verp: VerpSettings = field(default_factory=VerpSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"


_SECTIONS: dict[str, type[Any]] = {
    "database": DatabaseSettings,
    "policy": PolicySettings,
    "smtp": SmtpSettings,
    "verp": VerpSettings,
    "metrics": MetricsSettings,
    "processing": ProcessingSettings,
}


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    """Convert a TOML or environment value to the type of the default, with a plain-words error."""
    where = f"[{section}] {key}" if section else key
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where} must be true or false, not {value!r}")
    if isinstance(default, int):
        try:
            out = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a whole number, not {value!r}") from None
        if out < 0:
            raise ConfigError(f"{where} must not be negative")
        return out
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, not {value!r}") from None
    if isinstance(default, tuple):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where} must be a list of strings, not {value!r}")
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {value!r}")
    return value


def _build(cls: type[Any], section: str, values: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    defaults = cls()
    for name in known:
        default = getattr(defaults, name)
        env_key = f"BOUNCD_{section.upper()}_{name.upper()}"
        if env_key in env:
            kwargs[name] = _coerce(section, name, env[env_key], default)
        elif name in values:
            kwargs[name] = _coerce(section, name, values[name], default)
    return cls(**kwargs)


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (``path``, else ``BOUNCD_CONFIG``, else the first default path that exists)."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    chosen = Path(path) if path else (Path(env["BOUNCD_CONFIG"]) if env.get("BOUNCD_CONFIG") else None)
    if chosen is None:
        chosen = next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)
    elif not chosen.is_file():
        raise ConfigError(f"config file not found: {chosen}")
    if chosen is not None:
        try:
            data = tomllib.loads(chosen.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{chosen}: cannot read: {exc.strerror}") from None
    top_known = set(_SECTIONS) | {"log_format", "log_level"}
    unknown = set(data) - top_known
    if unknown:
        raise ConfigError(f"unknown section(s) or key(s): {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        values = data.get(section, {})
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table")
        kwargs[section] = _build(cls, section, values, env)
    # The one env name the issues promise for the database.
    if "BOUNCD_DATABASE_URL" in env:
        kwargs["database"] = DatabaseSettings(url=env["BOUNCD_DATABASE_URL"])
    for key in ("log_format", "log_level"):
        env_key = f"BOUNCD_{key.upper()}"
        if env_key in env:
            kwargs[key] = env[env_key]
        elif key in data:
            kwargs[key] = _coerce("", key, data[key], "")
    settings = Settings(**kwargs)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """Cross-key checks, in plain words."""
    if settings.policy.soft_bounces < 1:
        raise ConfigError("[policy] soft_bounces must be at least 1")
    if settings.policy.soft_window_days < 1:
        raise ConfigError("[policy] soft_window_days must be at least 1")
    bad = set(settings.policy.counting_reasons) & OUR_SENDING_REASONS
    if bad:
        raise ConfigError(f"[policy] counting_reasons must not list reasons caused by our sending: {', '.join(sorted(bad))}")
    _host, sep, port = settings.smtp.listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"[smtp] listen must be HOST:PORT, not {settings.smtp.listen!r}")
    if settings.log_format not in ("auto", "json", "console"):
        raise ConfigError("log_format must be auto, json or console")
    if settings.policy.require_signed_return_path and not settings.verp.secret:
        raise ConfigError("[policy] require_signed_return_path needs [verp] secret")
    _validate_daemon(settings)


def _validate_daemon(settings: Settings) -> None:
    """Listener, metrics and processing checks (issue 4)."""
    for net in settings.smtp.allow_networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"[smtp] allow_networks: {net!r} is not an IP network like 10.0.0.0/8") from None
    if bool(settings.smtp.tls_cert) != bool(settings.smtp.tls_key):
        raise ConfigError("[smtp] tls_cert and tls_key must be set together")
    if settings.smtp.workers < 1:
        raise ConfigError("[smtp] workers must be at least 1")
    if settings.smtp.max_message_bytes < 1024:
        raise ConfigError("[smtp] max_message_bytes must be at least 1024")
    if settings.smtp.max_line_bytes < 1001:
        raise ConfigError("[smtp] max_line_bytes must be at least 1001 (RFC 5321 section 4.5.3.1.6)")
    if settings.smtp.max_recipients < 1 or settings.smtp.max_connections < 1:
        raise ConfigError("[smtp] max_recipients and max_connections must be at least 1")
    if settings.metrics.listen:
        _host, sep, port = settings.metrics.listen.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"[metrics] listen must be HOST:PORT or empty, not {settings.metrics.listen!r}")
    if settings.processing.batch < 1:
        raise ConfigError("[processing] batch must be at least 1")
    if settings.processing.poll_seconds <= 0:
        raise ConfigError("[processing] poll_seconds must be more than 0")
    if settings.verp.secret and settings.verp.secret == settings.verp.previous_secret:
        raise ConfigError("[verp] previous_secret must differ from secret (it is the key being rotated out)")


def as_dict(settings: Settings) -> dict[str, Any]:
    """Effective settings as plain data, secrets masked."""
    out = dataclasses.asdict(settings)
    for key in ("secret", "previous_secret"):
        if out["verp"].get(key):
            out["verp"][key] = "***"
    return out
