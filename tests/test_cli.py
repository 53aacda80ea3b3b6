"""Scenarios through the admin CLI (``bouncd.cli.main``) on SQLite and PostgreSQL, as an operator would run them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bouncd.cli import EXIT_OK, EXIT_TEMPFAIL, EXIT_USAGE, main
from bouncd.db import current_revision, head_revision
from bouncd.db.session import make_engine
from tests.conftest import HARD, MAILBOX_FULL, SPAM_BLOCK, dsn_for, fresh_postgres_url, make_arf

DAY0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


class Cli:
    """Runs ``bouncd`` commands against one database and returns (exit code, stdout, stderr)."""

    def __init__(self, url: str, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Bind to a database and a scratch directory."""
        self.url, self.tmp, self.capsys = url, tmp, capsys
        self.n = 0

    def run(self, *argv: str) -> tuple[int, str, str]:
        """One command with ``--db`` added."""
        self.capsys.readouterr()
        code = main([*argv, "--db", self.url])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> Any:
        """A read command's ``--json`` output, asserting success."""
        code, out, err = self.run(*argv, "--json")
        assert code == EXIT_OK, err
        return json.loads(out)

    def write(self, raw: bytes) -> Path:
        """Save a message as an .eml file."""
        self.n += 1
        path = self.tmp / f"m{self.n:03}.eml"
        path.write_bytes(raw)
        return path

    def ingest(self, raw: bytes) -> dict[str, Any]:
        """``bouncd ingest FILE --json``."""
        result: dict[str, Any] = self.json("ingest", str(self.write(raw)))
        return result


@pytest.fixture
def cli(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI on an empty database of each backend, with default settings."""
    empty = tmp_path / "bouncd.toml"
    empty.write_text("")
    monkeypatch.setenv("BOUNCD_CONFIG", str(empty))
    monkeypatch.delenv("BOUNCD_DATABASE_URL", raising=False)
    cli = Cli(db_url, tmp_path, capsys)
    code, _, err = cli.run("db", "upgrade")
    assert code == EXIT_OK, err
    return cli


def test_a_hard_bounce_makes_the_contact_dnc_with_status_and_diagnostic_in_the_trail(cli: Cli) -> None:
    """contact show --json: dnc true, one 'on' entry carrying the status, diagnostic and rule."""
    cli.ingest(dsn_for(HARD, "dead@example.com", DAY0))
    shown = cli.json("contact", "show", "dead@example.com")
    assert shown["address"] == "dead@example.com" and shown["dnc"] is True
    (entry,) = shown["trail"]
    assert entry["action"] == "on" and entry["source"] == "hard_bounce" and entry["status"] == "5.1.1"
    assert "User unknown" in entry["diagnostic"] and entry["rule"] and entry["at"] and entry["note"]
    assert shown["bounces"][0]["reason"] == "userunknown"
    code, out, _ = cli.run("contact", "show", "dead@example.com")
    assert code == EXIT_OK and "DNC ON" in out and "5.1.1" in out and "User unknown" in out


def test_mailbox_full_on_four_days_stays_contactable_and_the_fifth_day_flips_it(cli: Cli) -> None:
    """N=5 within 30 days (defaults), counted on distinct days of arrival."""
    for day in range(4):
        cli.ingest(dsn_for(MAILBOX_FULL, "full@example.com", DAY0 + timedelta(days=day)))
        assert cli.json("contact", "show", "full@example.com")["dnc"] is False
    cli.ingest(dsn_for(MAILBOX_FULL, "full@example.com", DAY0 + timedelta(days=4)))
    shown = cli.json("contact", "show", "full@example.com")
    assert shown["dnc"] is True and [t["source"] for t in shown["trail"]] == ["soft_bounces"]
    assert len(shown["bounces"]) == 5


def test_spam_block_rejections_on_ten_days_never_make_a_contact_dnc(cli: Cli) -> None:
    """Our sending was blocked: recorded, never counted."""
    for day in range(10):
        cli.ingest(dsn_for(SPAM_BLOCK, "fine@example.com", DAY0 + timedelta(days=day)))
    shown = cli.json("contact", "show", "fine@example.com")
    assert shown["dnc"] is False and shown["trail"] == [] and len(shown["bounces"]) == 10
    assert cli.json("bounces", "list", "--reason", "blocked", "--soft")[0]["policy_rule"] == "policy.soft.ours"


def test_a_complaint_makes_the_contact_dnc(cli: Cli) -> None:
    """An ARF abuse report raises DNC with source complaint."""
    cli.ingest(make_arf("angry@example.com", DAY0))
    shown = cli.json("contact", "show", "angry@example.com")
    assert shown["dnc"] is True and shown["trail"][0]["source"] == "complaint"
    assert [d["address"] for d in cli.json("dnc", "list")] == ["angry@example.com"]


def test_dnc_off_clears_with_a_trail_entry_and_the_contact_reads_as_before(cli: Cli) -> None:
    """After dnc off the contact is exactly as before the DNC, apart from the trail that explains it."""
    cli.ingest(dsn_for(SPAM_BLOCK, "ann@example.com", DAY0))
    before = cli.json("contact", "show", "ann@example.com")
    code, _, err = cli.run("dnc", "on", "ann@example.com", "--note", "asked by phone", "--actor", "support")
    assert code == EXIT_OK, err
    assert cli.json("contact", "show", "ann@example.com")["dnc"] is True
    code, out, _ = cli.run("dnc", "off", "ann@example.com", "--note", "asked to be mailed again", "--actor", "support")
    assert code == EXIT_OK and "DNC off" in out
    after = cli.json("contact", "show", "ann@example.com")
    assert [(t["action"], t["source"], t["note"]) for t in after["trail"]] == [
        ("on", "manual", "asked by phone"),
        ("off", "manual", "asked to be mailed again"),
    ]
    assert {k: v for k, v in after.items() if k != "trail"} == {k: v for k, v in before.items() if k != "trail"}
    assert cli.json("dnc", "list") == []


def test_ingesting_the_same_file_twice_changes_nothing(cli: Cli) -> None:
    """The second ingest reports a duplicate; contact, trail, bounces and stats are unchanged."""
    path = cli.write(dsn_for(HARD, "dead@example.com", DAY0))
    first = cli.json("ingest", str(path))
    snapshot = (cli.json("contact", "show", "dead@example.com"), cli.json("stats"), cli.json("bounces", "list"))
    second = cli.json("ingest", str(path))
    assert not first["duplicate"] and second["duplicate"] and second["message_id"] == first["message_id"]
    assert (cli.json("contact", "show", "dead@example.com"), cli.json("stats"), cli.json("bounces", "list")) == snapshot


def test_messages_show_returns_the_raw_bytes_exactly(cli: Cli) -> None:
    """The stored evidence is the message byte for byte (run as a real process: stdout is binary)."""
    raw = dsn_for(HARD, "dead@example.com", DAY0)
    mid = cli.ingest(raw)["message_id"]
    shown = cli.json("messages", "show", str(mid))
    assert shown["state"] == "processed" and shown["kind"] == "bounce" and shown["events"][0]["recipient"] == "dead@example.com"
    proc = subprocess.run(
        [sys.executable, "-m", "bouncd", "messages", "show", str(mid), "--raw", "--db", cli.url], capture_output=True, check=True
    )
    assert proc.stdout == raw


def test_stats_and_bounce_filters(cli: Cli) -> None:
    """stats counts by kind, reason and day; bounces list filters by hardness, reason, contact and time."""
    cli.ingest(dsn_for(HARD, "dead@example.com", DAY0))
    cli.ingest(dsn_for(MAILBOX_FULL, "full@example.com", DAY0 + timedelta(days=1)))
    cli.ingest(make_arf("angry@example.com", DAY0 + timedelta(days=2)))
    stats = cli.json("stats")
    assert stats["by_kind"] == {"bounce": 2, "feedback": 1} and stats["dnc_contacts"] == 2
    assert stats["messages"] == 3 and stats["messages_by_state"] == {"processed": 3}
    assert stats["backlog"] == {"count": 0, "oldest_age_seconds": None}
    assert stats["by_day"] == {"2026-11-02": 1, "2026-11-03": 1, "2026-11-04": 1}
    assert [b["recipient"] for b in cli.json("bounces", "list", "--hard")] == ["dead@example.com"]
    assert [b["recipient"] for b in cli.json("bounces", "list", "--contact", "FULL@example.com")] == ["full@example.com"]
    assert [b["kind"] for b in cli.json("bounces", "list", "--since", "2026-11-04")] == ["feedback"]


def test_stats_counts_stored_messages_and_the_backlog_waiting_for_processing(cli: Cli) -> None:
    """`messages` is one integer (every stored message), split by state; `backlog` counts the unprocessed ones
    and the age of the oldest, as the listener leaves them before the processing loop gets to them."""
    from bouncd.db import repo
    from bouncd.db.session import transaction
    from bouncd.records import Inbound

    cli.ingest(dsn_for(HARD, "dead@example.com", DAY0))
    stored_at = datetime.now(UTC) - timedelta(minutes=5)
    engine = make_engine(cli.url)
    with transaction(engine) as s:
        for who in ("a", "b"):
            raw = dsn_for(HARD, f"{who}@example.com", DAY0)
            repo.store_inbound(s, [Inbound(raw=raw, received_at=stored_at, rcpt_tos=("bounces@example.org",))])
    engine.dispose()
    stats = cli.json("stats")
    assert stats["messages"] == 3 and stats["messages_by_state"] == {"processed": 1, "pending": 2}
    assert stats["backlog"]["count"] == 2 and 300 <= stats["backlog"]["oldest_age_seconds"] < 400
    code, out, _ = cli.run("stats")
    assert code == EXIT_OK and "messages: 3 (" in out and "backlog: 2, oldest 3" in out


def test_reprocess_dry_run_with_unchanged_rules_changes_nothing(cli: Cli) -> None:
    """Replaying stored mail through the same rules finds nothing to change."""
    cli.ingest(dsn_for(HARD, "dead@example.com", DAY0))
    assert cli.json("reprocess", "--dry-run") == []
    assert cli.json("reprocess") == []
    assert len(cli.json("contact", "show", "dead@example.com")["trail"]) == 1


def test_pipe_mode_reads_stdin(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """``bouncd ingest -`` stores and processes the message on stdin."""
    import io

    raw = dsn_for(HARD, "piped@example.com", DAY0)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    code, out, _ = cli.run("ingest", "-", "--json")
    assert code == EXIT_OK and json.loads(out)["dnc_raised"] == ["piped@example.com"]


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["contact", "show", "nobody@example.com"], 1, "unknown address: nobody@example.com"),
        (["contact", "show", "not an address"], EXIT_USAGE, "not an email address"),
        (["dnc", "off", "nobody@example.com", "--note", "x"], 1, "unknown address"),
        (["messages", "show", "999"], 1, "no message with id 999"),
        (["ingest", "/no/such/file.eml"], EXIT_USAGE, "cannot read /no/such/file.eml"),
    ],
    ids=["unknown contact", "bad address", "clearing an unknown contact", "unknown message", "missing file"],
)
def test_bad_input_gets_one_clear_line_and_a_non_zero_exit(cli: Cli, argv: list[str], code: int, says: str) -> None:
    """Never a traceback: one line on stderr naming the problem."""
    got, _out, err = cli.run(*argv)
    assert got == code and says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_usage_errors_exit_2(cli: Cli) -> None:
    """argparse-level mistakes exit 2."""
    with pytest.raises(SystemExit) as exc:
        main(["bounces", "list", "--since", "last tuesday"])
    assert exc.value.code == EXIT_USAGE
    with pytest.raises(SystemExit) as exc:
        main(["dnc", "on", "a@example.com"])  # --note is required
    assert exc.value.code == EXIT_USAGE


def test_ingest_exits_75_when_the_database_is_unavailable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Pipe mode: the MTA must retry (EX_TEMPFAIL) when we cannot store."""
    eml = tmp_path / "m.eml"
    eml.write_bytes(dsn_for(HARD, "dead@example.com", DAY0))
    code = main(["ingest", str(eml), "--db", "postgresql://nobody@127.0.0.1:1/none"])
    assert code == EXIT_TEMPFAIL and "retry later" in capsys.readouterr().err


def test_db_upgrade_migrates_an_empty_database_then_reports_it_up_to_date(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bouncd db upgrade`` migrates an empty database, then says it is up to date."""
    assert main(["db", "upgrade", "--db", db_url]) == EXIT_OK
    assert "was empty" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", db_url]) == EXIT_OK
    assert "already up to date" in capsys.readouterr().out


@pytest.mark.postgres
def test_a_server_database_without_the_schema_is_not_changed_behind_the_operators_back(
    postgres_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL: read commands on an empty database ask for `bouncd db upgrade`; ingest asks the MTA to retry."""
    url = fresh_postgres_url(postgres_server)
    assert main(["dnc", "list", "--db", url]) == 1
    assert "run `bouncd db upgrade`" in capsys.readouterr().err
    assert current_revision(make_engine(url)) is None


def test_sqlite_gets_its_schema_on_first_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The embedded default works out of the box: the file and schema are created by the first command."""
    url = f"sqlite:///{tmp_path / 'new' / 'b.sqlite3'}"
    assert main(["dnc", "list", "--db", url]) == EXIT_OK
    assert current_revision(make_engine(url)) == head_revision()


def test_with_signed_return_paths_required_only_signed_bounces_change_dnc(cli: Cli, tmp_path: Path) -> None:
    """A forged (unsigned) hard bounce is stored and shown but DNCs nobody; the signed one does."""
    from bouncd import verp
    from bouncd.config import VerpSettings

    conf = tmp_path / "strict.toml"
    conf.write_text('[policy]\nrequire_signed_return_path = true\n[verp]\nsecret = "s3cret"\ndomain = "bounce.example.org"\n')
    forged = cli.write(dsn_for(HARD, "victim@example.com", DAY0))
    code, out, err = cli.run("ingest", str(forged), "--config", str(conf), "--rcpt", "bounces@bounce.example.org", "--json")
    assert code == EXIT_OK, err
    assert json.loads(out)["dnc_raised"] == []
    assert cli.json("contact", "show", "victim@example.com")["bounces"][0]["policy_rule"] == "policy.unsigned"
    rcpt = verp.encode(VerpSettings(secret="s3cret", domain="bounce.example.org"), "victim@example.com")
    signed = cli.write(dsn_for(HARD, "victim@example.com", DAY0 + timedelta(days=1)))
    code, out, err = cli.run("ingest", str(signed), "--config", str(conf), "--rcpt", rcpt, "--json")
    assert code == EXIT_OK, err
    assert json.loads(out)["dnc_raised"] == ["victim@example.com"]
