"""The SMTP/LMTP listener with a real smtplib client on 127.0.0.1 port 0 and a real database.

Each test runs bouncd's listener (the same ``Listener`` that ``bouncd serve`` runs) on an event loop in a
background thread, talks to it with ``smtplib``, and reads the database afterwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import os
import shutil
import smtplib
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from structlog.testing import capture_logs

from bouncd import verp
from bouncd.config import PolicySettings, Settings, SmtpSettings, VerpSettings
from bouncd.daemon import Listener, bind_socket, make_store_batch
from bouncd.db import repo
from bouncd.db.models import Message
from bouncd.db.repo import find_contact
from bouncd.db.session import make_engine, transaction
from bouncd.ingest import process_pending
from tests.conftest import HARD, SPAM_BLOCK, dsn_for

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


class Running:
    """A listener serving on a background event loop."""

    def __init__(self, settings: Settings, engine: Engine, store_batch: Any = None) -> None:
        self.settings = settings
        self.engine = engine
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.listener = Listener(settings, store_batch or make_store_batch(engine))
        sock = bind_socket("127.0.0.1", 0)
        self.host, self.port = self.call(self.listener.start(sock))

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def client(self, lmtp: bool = False) -> smtplib.SMTP:
        c: smtplib.SMTP = smtplib.LMTP(self.host, self.port) if lmtp else smtplib.SMTP(self.host, self.port, timeout=30)
        return c

    def stop(self) -> None:
        self.call(self.listener.stop(grace=5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def _settings(**smtp: Any) -> Settings:
    base = SmtpSettings(bounce_domains=("bounces.example.org",), bounce_addresses=("bounce@shared.example.com",))
    verp_settings = VerpSettings(secret="s3cret", domain="rp.example.org")
    return Settings(smtp=dataclasses.replace(base, **smtp), verp=verp_settings)


@pytest.fixture
def serve(engine: Engine) -> Iterator[Callable[..., Running]]:
    """Start listeners with given settings on the test database; stop them afterwards."""
    started: list[Running] = []

    def start(settings: Settings | None = None, **smtp: Any) -> Running:
        r = Running(settings or _settings(**smtp), engine)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def _stored(engine: Engine) -> list[Message]:
    with transaction(engine) as s:
        return list(s.execute(select(Message).order_by(Message.id)).scalars())


def _dnc(engine: Engine, address: str) -> bool | None:
    with transaction(engine) as s:
        c = find_contact(s, address)
        return None if c is None else c.dnc


def test_hard_bounce_is_stored_before_250_then_processed_to_dnc(serve: Callable[..., Running], engine: Engine) -> None:
    """A hard-bounce DSN over SMTP gets 250 only once stored; processing then makes the contact DNC."""
    r = serve()
    raw = dsn_for(HARD, "gone@example.net", NOW)
    with r.client() as c:
        c.ehlo("mx.example.net")
        code, _ = c.mail("<>")
        assert code == 250
        assert c.rcpt("bounce@bounces.example.org")[0] == 250
        code, msg = c.data(raw)
    assert (code, msg.split()[0]) == (250, b"2.0.0")
    rows = _stored(engine)
    assert len(rows) == 1 and rows[0].state == "pending"
    assert rows[0].mail_from == "" and rows[0].rcpt_tos == "bounce@bounces.example.org"
    assert rows[0].peer is not None and rows[0].peer.startswith("127.0.0.1:")
    assert process_pending(engine, r.settings) == 1
    assert _dnc(engine, "gone@example.net") is True


def test_unknown_recipient_gets_550(serve: Callable[..., Running], engine: Engine) -> None:
    """RCPT for anything but a bounce address is refused with 550 5.1.1 and nothing is stored."""
    r = serve()
    with r.client() as c:
        c.ehlo("mx.example.net")
        c.mail("<>")
        code, msg = c.rcpt("someone@example.com")
        assert code == 550 and msg.startswith(b"5.1.1")
        assert c.rcpt("other@shared.example.com")[0] == 550
        assert c.rcpt("bounce+tag@shared.example.com")[0] == 250  # +tag of a configured bounce address
        assert c.rcpt("bounces+x=example.com@rp.example.org")[0] == 250  # VERP form on the [verp] domain
    assert _stored(engine) == []


def test_oversize_message_gets_552(serve: Callable[..., Running], engine: Engine) -> None:
    """A message over max_message_bytes gets 552 5.3.4, both by SIZE= at MAIL and by counting DATA."""
    r = serve(max_message_bytes=50_000)
    big = dsn_for(HARD, "gone@example.net", NOW) + b"x" * 60_000 + b"\r\n"
    with r.client() as c:
        c.ehlo("mx.example.net")
        code, msg = c.mail("<>", ["SIZE=60000"])
        assert code == 552 and msg.startswith(b"5.3.4")
        assert c.mail("<>")[0] == 250
        c.rcpt("bounce@bounces.example.org")
        code, msg = c.data(big)
        assert code == 552 and msg.startswith(b"5.3.4")
    assert _stored(engine) == []


def test_long_lines_of_real_dsns_are_accepted(serve: Callable[..., Running], engine: Engine) -> None:
    """Lines longer than RFC 5321's 1000 octets (Amazon SES, GMX quote whole headers) are accepted and kept intact."""
    r = serve()
    long_line = b"X-Original-Header: " + b"a" * 5000
    raw = dsn_for(HARD, "gone@example.net", NOW).replace(b"Subject: Our newsletter", b"Subject: x\r\n" + long_line)
    with r.client() as c:
        c.sendmail("", ["bounce@bounces.example.org"], raw)
    assert long_line in repo.raw_bytes(_stored(engine)[0])


def test_listener_stores_plain_and_processing_compresses(serve: Callable[..., Running], engine: Engine) -> None:
    """The listener keeps the bytes as received (no zlib before the 250); processing compresses them when it
    records the message, and the bytes read back, and their SHA-256, are the same before and after."""
    r = serve()
    raw = dsn_for(HARD, "gone@example.net", NOW) + b"x" * 4000 + b"\r\n"
    with r.client() as c:
        c.sendmail("", ["bounce@bounces.example.org"], raw)
    (before,) = _stored(engine)
    assert repo.is_plain(before.raw_z) and repo.raw_bytes(before) == raw
    assert hashlib.sha256(raw).hexdigest() == before.sha256
    assert process_pending(engine, r.settings) == 1
    (after,) = _stored(engine)
    assert not repo.is_plain(after.raw_z) and len(after.raw_z) < len(raw) // 2
    assert zlib.decompress(after.raw_z) == raw == repo.raw_bytes(after) and after.sha256 == before.sha256
    assert after.state == "processed" and _dnc(engine, "gone@example.net") is True


def test_recipient_limit(serve: Callable[..., Running]) -> None:
    """More than max_recipients RCPTs get 452 4.5.3 (RFC 5321 section 4.5.3.1.8)."""
    r = serve(max_recipients=2)
    with r.client() as c:
        c.ehlo("mx")
        c.mail("<>")
        assert c.rcpt("a@bounces.example.org")[0] == 250
        assert c.rcpt("b@bounces.example.org")[0] == 250
        code, msg = c.rcpt("c@bounces.example.org")
        assert code == 452 and msg.startswith(b"4.5.3")


def test_allowlist_refuses_other_networks_with_554(serve: Callable[..., Running]) -> None:
    """With allow_networks set, a client outside it gets a 554 greeting; one inside is served."""
    r = serve(allow_networks=("10.0.0.0/8",))
    with pytest.raises(smtplib.SMTPConnectError) as err:
        r.client()
    assert err.value.smtp_code == 554
    ok = serve(allow_networks=("127.0.0.0/8",))
    with ok.client() as c:
        assert c.noop()[0] == 250


def test_connection_limit_refuses_with_421(serve: Callable[..., Running]) -> None:
    """Beyond max_connections concurrent sessions, a new client gets 421 4.7.0 at once."""
    r = serve(max_connections=2)
    a, b = r.client(), r.client()
    try:
        with pytest.raises(smtplib.SMTPConnectError) as err:
            r.client()
        assert err.value.smtp_code == 421
    finally:
        a.quit()
        b.quit()


def test_lmtp_answers_each_recipient(serve: Callable[..., Running], engine: Engine) -> None:
    """LMTP (RFC 2033): after DATA one reply per accepted recipient; the message is stored once."""
    r = serve(lmtp=True)
    c = r.client(lmtp=True)
    try:
        assert c.ehlo_or_helo_if_needed() is None
        c.mail("<>")
        assert c.rcpt("one@bounces.example.org")[0] == 250
        assert c.rcpt("nobody@example.com")[0] == 550
        assert c.rcpt("two@bounces.example.org")[0] == 250
        c.putcmd("data")
        assert c.getreply()[0] == 354
        c.send(dsn_for(HARD, "gone@example.net", NOW).replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
        replies = [c.getreply(), c.getreply()]
    finally:
        c.close()
    assert [code for code, _ in replies] == [250, 250]
    rows = _stored(engine)
    assert len(rows) == 1 and rows[0].protocol == "lmtp"
    assert rows[0].rcpt_tos.split("\n") == ["one@bounces.example.org", "two@bounces.example.org"]


def test_concurrent_messages_share_commits(serve: Callable[..., Running], engine: Engine) -> None:
    """32 clients at once: every 250'd message is stored, and commits carried more than one message each."""
    r = serve(group_commit_ms=5.0)

    def send(i: int) -> int:
        with r.client() as c:
            c.sendmail("", ["b@bounces.example.org"], dsn_for(HARD, f"user{i}@example.net", NOW))
        return i

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        done = list(pool.map(send, range(96)))
    assert len(done) == 96
    assert len(_stored(engine)) == 96
    stats = r.listener.committer.stats
    assert stats.messages == 96 and stats.commits < 96


def test_same_message_twice_is_stored_once(serve: Callable[..., Running], engine: Engine) -> None:
    """An MTA re-delivering the same bytes (e.g. after a lost 250) gets 250 again; one row is kept."""
    r = serve()
    raw = dsn_for(HARD, "gone@example.net", NOW)
    for _ in range(2):
        with r.client() as c:
            c.sendmail("", ["b@bounces.example.org"], raw)
    assert len(_stored(engine)) == 1


def _signed_settings() -> Settings:
    s = _settings()
    return dataclasses.replace(s, policy=PolicySettings(require_signed_return_path=True))


@pytest.mark.parametrize("which", ["valid", "invalid", "unsigned"])
def test_verp_with_required_signatures(serve: Callable[..., Running], engine: Engine, which: str) -> None:
    """require_signed_return_path: only a validly signed return path lets a hard bounce raise DNC.

    All three are stored (250); the invalid one is logged as verp.invalid; only the valid one flips DNC.
    """
    settings = _signed_settings()
    r = serve(settings)
    contact = "gone@example.net"
    rcpt = {
        "valid": verp.encode(settings.verp, contact),
        "invalid": verp.encode(dataclasses.replace(settings.verp, secret="forger"), contact),
        "unsigned": "bounces+gone=example.net@rp.example.org",
    }[which]
    with r.client() as c:
        c.ehlo("mx")
        c.mail("<>")
        assert c.rcpt(rcpt)[0] == 250
        assert c.data(dsn_for(HARD, contact, NOW))[0] == 250
    with capture_logs() as logs:
        assert process_pending(engine, settings) == 1
    assert _dnc(engine, contact) is (which == "valid")
    assert ("verp.invalid" in [e["event"] for e in logs]) is (which == "invalid")


def test_forged_bounces_for_many_contacts_change_nothing_when_signatures_are_required(
    serve: Callable[..., Running], engine: Engine
) -> None:
    """A flood of unsigned hard bounces for many addresses is stored but raises no DNC."""
    settings = _signed_settings()
    r = serve(settings)
    with r.client() as c:
        for i in range(20):
            c.sendmail("", ["bounce@bounces.example.org"], dsn_for(HARD, f"victim{i}@example.net", NOW))
    assert process_pending(engine, settings) == 20
    assert all(not _dnc(engine, f"victim{i}@example.net") for i in range(20))


def test_soft_spam_block_is_recorded_not_dnc(serve: Callable[..., Running], engine: Engine) -> None:
    """A spam-block rejection is stored and processed but never raises DNC (it blames our sending)."""
    r = serve()
    with r.client() as c:
        c.sendmail("", ["b@bounces.example.org"], dsn_for(SPAM_BLOCK, "fine@example.net", NOW))
    assert process_pending(engine, r.settings) == 1
    assert _dnc(engine, "fine@example.net") is False


def _sqlite_path(engine: Engine) -> Path | None:
    return Path(str(engine.url.database)) if engine.dialect.name == "sqlite" else None


def _can_chattr() -> bool:
    return os.geteuid() == 0 and shutil.which("chattr") is not None


def test_storage_failure_answers_451_and_writes_nothing(serve: Callable[..., Running], engine: Engine) -> None:
    """Database made unwritable: every message of the batch gets 451 4.3.0 and no row is half-written;
    once writable again, the same message is accepted and stored once."""
    r = serve(group_commit_ms=20.0)
    with r.client() as c:
        c.sendmail("", ["b@bounces.example.org"], dsn_for(HARD, "first@example.net", NOW))
    raws = [dsn_for(HARD, f"during{i}@example.net", NOW) for i in range(4)]
    with _unwritable(engine):

        def attempt(raw: bytes) -> tuple[int, bytes]:
            with r.client() as c:
                c.ehlo("mx")
                c.mail("<>")
                c.rcpt("b@bounces.example.org")
                return c.data(raw)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(attempt, raws))
        assert [code for code, _ in replies] == [451] * 4
        assert all(msg.startswith(b"4.3.0") for _, msg in replies)
    assert len(_stored(engine)) == 1  # only the message before the fault
    with r.client() as c:
        for raw in raws:
            c.sendmail("", ["b@bounces.example.org"], raw)
    assert len(_stored(engine)) == 5
    with transaction(engine) as s:
        assert s.execute(select(func.count()).select_from(Message).where(Message.state == "pending")).scalar_one() == 5


class _unwritable:
    """Make the database refuse writes for real: PostgreSQL read-only, SQLite files immutable (chattr +i)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.paths: list[Path] = []

    def _pg(self, read_only: bool) -> None:
        # A separate connection, so no pooled session of the listener keeps the old setting; then every
        # other backend is ended and the listener reconnects (pool_pre_ping) into the new default.
        admin = make_engine(self.engine.url.render_as_string(hide_password=False))
        try:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                db = conn.execute(text("SELECT current_database()")).scalar_one()
                conn.execute(text("SET default_transaction_read_only = off"))
                conn.execute(text(f'ALTER DATABASE "{db}" SET default_transaction_read_only = {"on" if read_only else "off"}'))
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"),
                    {"d": db},
                )
        finally:
            admin.dispose()

    def __enter__(self) -> None:
        path = _sqlite_path(self.engine)
        if path is None:
            self._pg(True)
            return
        if not _can_chattr():
            pytest.skip("needs root and chattr to make a SQLite file unwritable")
        self.paths = [p for p in (path, Path(f"{path}-wal"), path.parent) if p.exists()]
        subprocess.run(["chattr", "+i", *map(str, self.paths)], check=True)

    def __exit__(self, *exc: object) -> None:
        if self.paths:
            subprocess.run(["chattr", "-i", *map(str, self.paths)], check=True)
        else:
            self._pg(False)


def test_batch_store_marks_duplicates_within_and_across_batches(engine: Engine) -> None:
    """The group-commit store: same bytes twice in one batch, or already stored, map to one row each."""
    from bouncd.db.repo import store_inbound_batch
    from bouncd.records import Inbound

    def item(raw: bytes) -> Inbound:
        return Inbound(raw=raw, received_at=NOW, mail_from="", rcpt_tos=("b@bounces.example.org",), peer="127.0.0.1:1")

    a, b, c = (dsn_for(HARD, f"{x}@example.net", NOW) for x in "abc")
    with transaction(engine) as s:
        (first,) = store_inbound_batch(s, [item(c)])
    with transaction(engine) as s:
        refs = store_inbound_batch(s, [item(a), item(b), item(a), item(c)])
    assert [r.duplicate for r in refs] == [False, False, True, True]
    assert refs[0].message_id == refs[2].message_id and refs[3].message_id == first.message_id
    assert len({r.message_id for r in refs}) == 3
    assert len(_stored(engine)) == 3


def test_listener_writer_marks_duplicates_within_and_across_batches(engine: Engine) -> None:
    """The listener's writer (one INSERT ... RETURNING per batch): same bytes twice in one batch, or already
    stored, map to one row each and are reported as duplicates; a failed batch leaves nothing behind."""
    from bouncd.errors import StoreError
    from bouncd.records import Inbound

    def item(raw: bytes) -> Inbound:
        return Inbound(raw=raw, received_at=NOW, mail_from="", rcpt_tos=("b@bounces.example.org",), peer="127.0.0.1:1")

    a, b, c = (dsn_for(HARD, f"{x}@example.net", NOW) for x in "abc")
    store = make_store_batch(engine)
    (first,) = store([item(c)])
    refs = list(store([item(a), item(b), item(a), item(c)]))
    assert [r.duplicate for r in refs] == [False, False, True, True]  # type: ignore[attr-defined]
    assert refs[0].message_id == refs[2].message_id and refs[3].message_id == first.message_id  # type: ignore[attr-defined]
    assert len({r.message_id for r in refs}) == 3  # type: ignore[attr-defined]
    assert [r.duplicate for r in store([item(b)])] == [True]  # type: ignore[attr-defined]
    with pytest.raises(StoreError):
        store([item(dsn_for(HARD, "d@example.net", NOW)), Inbound(raw=b"x", received_at=None, mail_from="",  # type: ignore[arg-type]
                                                                  rcpt_tos=(), peer=None)])  # fmt: skip
    assert len(_stored(engine)) == 3  # the failed batch rolled back whole: d@ is not stored
    store.close()  # type: ignore[attr-defined]


def test_starttls_with_a_configured_certificate(serve: Callable[..., Running], engine: Engine, tmp_path: Path) -> None:
    """With tls_cert/tls_key set, EHLO offers STARTTLS and a message sent over TLS is stored."""
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    r = serve(tls_cert=str(cert), tls_key=str(key))
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    with r.client() as c:
        c.ehlo("mx")
        assert c.has_extn("starttls")
        assert c.starttls(context=ctx)[0] == 220
        c.ehlo("mx")
        c.sendmail("", ["b@bounces.example.org"], dsn_for(HARD, "tls@example.net", NOW))
    assert len(_stored(engine)) == 1


def test_silent_client_is_disconnected_after_command_timeout(serve: Callable[..., Running]) -> None:
    """A session that says nothing for command_timeout seconds is closed (slowloris protection)."""
    import time

    r = serve(command_timeout=0.5)
    c = r.client()
    c.ehlo("mx")
    time.sleep(1.2)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.noop()
    assert r.listener.gate.open_sessions == 0


def test_each_command_restarts_the_command_timeout(serve: Callable[..., Running]) -> None:
    """The timeout counts from the last command: a session active for three timeouts' worth stays open, and
    is closed once it has been silent for one."""
    import time

    r = serve(command_timeout=0.5)
    c = r.client()
    c.ehlo("mx")
    started = time.monotonic()
    while time.monotonic() - started < 1.6:
        assert c.noop()[0] == 250
        time.sleep(0.2)
    time.sleep(1.2)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.noop()
    assert r.listener.gate.open_sessions == 0


def test_commit_slower_than_command_timeout_still_gets_its_250(engine: Engine) -> None:
    """A commit that takes longer than command_timeout does not drop the session mid-DATA: the sender gets
    its 250 (aiosmtpd's command timer ran on through DATA), and the session is still usable afterwards."""
    import time

    real = make_store_batch(engine)

    def slow_store(items: Any) -> Any:
        time.sleep(1.0)  # a slow disk or a busy PostgreSQL: longer than the 0.4 s command_timeout below
        return real(items)

    r = Running(_settings(command_timeout=0.4), engine, store_batch=slow_store)
    try:
        with r.client() as c:
            c.ehlo("mx")
            c.mail("<>")
            c.rcpt("b@bounces.example.org")
            code, _ = c.data(dsn_for(HARD, "slow@example.net", NOW))
            assert code == 250
            assert c.noop()[0] == 250
            time.sleep(1.0)  # idle again: the ordinary command timeout applies after DATA
            with pytest.raises(smtplib.SMTPServerDisconnected):
                c.noop()
    finally:
        r.stop()
    assert len(_stored(engine)) == 1


# --- the MAIL/RCPT path reader: bouncd's fast path must give aiosmtpd's answer, or step aside -------------

_PATH_CHARS = "ab.Z9+-_=@<>  \t()\"[]:,\\é"


def _aiosmtpd_getaddr(arg: str, limit: int = 0) -> tuple[str | None, str | None]:
    from aiosmtpd.smtp import SMTP

    return SMTP._getaddr(type("P", (), {"local_part_limit": limit})(), arg)  # type: ignore[arg-type]


def _check_same(arg: str, limit: int = 0) -> bool:
    """True when the fast path took ``arg``; either way its answer, if any, is aiosmtpd's."""
    from bouncd.smtp import simple_path

    fast = simple_path(arg, limit)
    if fast is not None:
        assert fast == _aiosmtpd_getaddr(arg, limit), arg
    return fast is not None


@pytest.mark.parametrize(
    ("arg", "taken"),
    [
        ("<>", True),
        ("<> SIZE=1234", True),
        ("<bounces+abc.def@bounces.example.org>", True),
        ("<A.B+c@Ex-ample.ORG> BODY=8BITMIME SIZE=10", True),
        ("<a@b.c>x", True),
        ("<a@b.c>  SIZE=1", False),  # more than one space: the RFC 5322 parser decides
        ("<a@b.c> (comment)", False),
        ("<a@b.c>\tSIZE=1", False),
        (" <a@b.c>", False),
        ('<"quoted local"@b.c>', False),
        ("<a..b@c>", False),
        ("<a@[192.0.2.1]>", False),
        ("<@relay.example:a@b.c>", False),
        ("<üser@b.c>", False),
        ("<a@b.c", False),
        ("<a@b.>", False),
    ],
)
def test_simple_path_matches_aiosmtpd_or_steps_aside(arg: str, taken: bool) -> None:
    assert _check_same(arg) is taken


def test_simple_path_keeps_the_local_part_limit() -> None:
    from bouncd.smtp import simple_path

    assert simple_path("<abcdef@b.c>", 5) == (None, None) == _aiosmtpd_getaddr("<abcdef@b.c>", 5)
    assert _check_same("<abcde@b.c> SIZE=1", 5)


def test_simple_path_agrees_with_aiosmtpd_on_generated_paths() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    atom = st.text("ab.Z9+-_={}", min_size=0, max_size=6)
    tails = ["", " SIZE=1", "  SIZE=1", "\tX", " (c) X", "x", " ", " \t"]
    rest = st.one_of(st.sampled_from(tails), st.text(_PATH_CHARS, max_size=6))
    shaped = st.builds(
        lambda lp, dom, rest, close: f"<{lp}@{dom}{'>' if close else ''}{rest}",
        st.one_of(atom, st.lists(st.text("aZ9+-_={}", min_size=1, max_size=4), min_size=1, max_size=3).map(".".join)),
        st.one_of(st.text("ab.9-[]", min_size=0, max_size=8), st.sampled_from(["b.c", "x-y.example", "[192.0.2.1]"])),
        rest,
        st.booleans(),
    )
    null = st.builds(lambda r: f"<>{r}", rest)
    taken: list[bool] = []

    @settings(max_examples=600, deadline=None, database=None)
    @given(st.one_of(shaped, null, st.text(_PATH_CHARS, max_size=14)), st.sampled_from([0, 0, 3]))
    def check(arg: str, limit: int) -> None:
        taken.append(_check_same(arg, limit))

    check()
    assert any(taken) and not all(taken)  # both branches were exercised
