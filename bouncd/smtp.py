"""The aiosmtpd handler: RCPT and DATA policy, group commit, and the replies we send.

A ``250`` after DATA means the message is committed to the database: after it, the bounce exists nowhere
else (the MTA deletes its copy). Messages that arrive together share one commit (:class:`GroupCommitter`),
each waiting for that commit before its reply. A storage failure answers ``451 4.3.0`` so the MTA keeps
the message queued and retries (RFC 5321 section 4.2.5); our own bug is never answered with a 5xx.

This module knows neither SQLAlchemy nor the parser: the daemon hands :class:`GroupCommitter` a blocking
``store_batch`` function (one transaction for the whole batch) that runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from bouncd import verp
from bouncd.config import Settings
from bouncd.errors import StoreError
from bouncd.records import Inbound

log = structlog.get_logger("bouncd.smtp")

# Replies. RFC 5321 section 4.2 reply codes with RFC 3463 enhanced status codes.
R250_RCPT = "250 2.1.5 OK"
R250_QUEUED = "250 2.0.0 OK: stored"
R421_TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
R421_SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
R451_STORAGE = "451 4.3.0 Temporary storage failure, try again later"
R451_LOCAL_ERROR = "451 4.3.0 Local error in processing, try again later"
R452_TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
R550_NOT_A_BOUNCE_ADDRESS = "550 5.1.1 Recipient address rejected: not a bounce address here"
R552_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
R554_ACCESS_DENIED = "554 5.7.1 Access denied: client network not allowed"

# RFC 5321 section 4.5.3.2.6: a server should wait 10 minutes for the end of data (and the commit after it).
DATA_TIMEOUT_SECONDS = 600.0

StoreBatch = Callable[[Sequence[Inbound]], Sequence[object]]


def is_bounce_address(settings: Settings, address: str) -> bool:
    """True for an address bouncd accepts mail for: a bounce domain, a bounce address (or +tag), a VERP form."""
    addr = address.strip().strip("<>").lower()
    local, at, domain = addr.rpartition("@")
    if not at or not local:
        return False
    if domain in {d.lower() for d in settings.smtp.bounce_domains}:
        return True
    base = local.split("+", 1)[0]
    for wanted in settings.smtp.bounce_addresses:
        w_local, _, w_domain = wanted.lower().rpartition("@")
        if domain == w_domain and (local == w_local or base == w_local):
            return True
    return verp.is_verp_form(settings.verp, addr) or (
        domain == settings.verp.domain.lower() and local == settings.verp.local_prefix.lower()
    )


@dataclass
class _Pending:
    item: Inbound
    future: asyncio.Future[object]


@dataclass
class CommitStats:
    """Counters the metrics module reads; plain numbers so this module stays free of prometheus."""

    commits: int = 0
    failures: int = 0
    messages: int = 0
    batch_sizes: list[int] = field(default_factory=list)  # drained by the metrics collector


class GroupCommitter:
    """One writer task: every message waiting when a commit starts shares it; each gets the commit's outcome.

    While one commit runs in its thread, new arrivals queue; the next commit takes them all (up to
    ``max_batch``), after waiting ``wait_ms`` for more to join. Any exception fails the whole batch with
    :class:`StoreError` (the transaction rolled back, so nothing is half-written) and every sender gets 451.
    """

    def __init__(
        self,
        store_batch: StoreBatch,
        *,
        wait_ms: float = 2.0,
        max_batch: int = 500,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._store_batch = store_batch
        self._wait = max(wait_ms, 0.0) / 1000.0
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # One commit at a time, in a thread of our own (``store_batch`` keeps its database connection;
        # a shared default executor would be sized for other work). Two in flight halved the batches and
        # cost more than the overlap gained (bench/smtp_bench.py, 32 connections: SQLite 2,200 -> 1,800
        # msgs/s; PostgreSQL 3,600 -> 3,000).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bouncd-commit")
        self.stats = CommitStats()

    def start(self) -> None:
        """Start the writer task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def submit(self, item: Inbound) -> object:
        """Queue one message and wait for the commit that holds it; raises StoreError when it failed."""
        if self._task is None or self._task.done():
            raise StoreError("the commit writer is not running")
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(item, fut))
        return await fut

    async def close(self) -> None:
        """Commit everything already queued, then stop the writer."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None
        self._executor.shutdown(wait=True)
        closer = getattr(self._store_batch, "close", None)
        if callable(closer):
            closer()  # e.g. the daemon's writer releasing its connections

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()  # everything that arrives during a commit joins the next one
            if first is None:
                break
            if self._wait:
                await asyncio.sleep(self._wait)
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            await self._store(batch)

    async def _store(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            refs = await asyncio.get_running_loop().run_in_executor(self._executor, self._store_batch, [p.item for p in batch])
        except Exception as exc:  # the edge: every storage failure becomes a 451 for the whole batch
            self.stats.failures += 1
            log.error("commit.failed", batch=len(batch), error=f"{type(exc).__name__}: {exc}")
            err = exc if isinstance(exc, StoreError) else StoreError(f"{type(exc).__name__}: {exc}")
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)
            return
        self.stats.commits += 1
        self.stats.messages += len(batch)
        self.stats.batch_sizes.append(len(batch))
        if len(self.stats.batch_sizes) > 10_000:  # nobody drains it (no metrics listener): stay bounded
            del self.stats.batch_sizes[:5_000]
        log.debug("commit.done", batch=len(batch), ms=round((time.perf_counter() - started) * 1000, 2))
        for p, ref in zip(batch, refs, strict=False):
            if not p.future.done():
                p.future.set_result(ref)
        if self._on_commit is not None:
            self._on_commit(len(batch))


# The reverse-path or forward-path of nearly every MAIL/RCPT an MTA sends: ``<>`` or ``<dot-atom@domain>``,
# all ASCII, then nothing or one space and the parameters. aiosmtpd's own _getaddr builds a typing.Protocol
# class on every call and runs the email package's RFC 5322 header parser (about a quarter of the event
# loop's CPU per message under load); these two forms are read here with the same result (tests compare
# both on generated input) and anything else still goes to aiosmtpd's parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(rf"<(?:({_ATEXT}(?:\.{_ATEXT})*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*))?>")
_CFWS_LEADER = frozenset(" \t(")


def simple_path(arg: str, local_part_limit: int = 0) -> tuple[str | None, str | None] | None:
    """aiosmtpd's ``_getaddr`` result for ``<>`` and plain ``<local@domain>`` forms; None for anything else."""
    m = _SIMPLE_PATH.match(arg)
    if m is None:
        return None
    rest = arg[m.end() :]
    if m.group(1) is None:
        return "<>", rest  # the null path: aiosmtpd hands back the remainder untouched
    if rest:
        if rest[0] == " " and rest[1:2] and rest[1] not in _CFWS_LEADER:
            rest = rest[1:]  # the parser drops the whitespace after '>'; more of it, or a comment: theirs
        elif rest[0] in _CFWS_LEADER:
            return None
    if local_part_limit and len(m.group(1)) > local_part_limit:
        return None, None
    return f"{m.group(1)}@{m.group(2)}", rest


def _peer_host(peer: Any) -> str | None:
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


def _peer_text(peer: Any) -> str | None:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return None if peer is None else str(peer)


class BounceHandler:
    """aiosmtpd handler: accepts bounce recipients only and answers DATA after the commit."""

    def __init__(self, settings: Settings, committer: GroupCommitter, *, lmtp: bool = False) -> None:
        self.settings = settings
        self.committer = committer
        self.lmtp = lmtp
        self.outcomes: dict[str, int] = {}  # outcome -> count, read by the metrics collector

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        """RCPT policy: bounce addresses only (550 5.1.1 otherwise), at most max_recipients (452 4.5.3)."""
        if len(envelope.rcpt_tos) >= self.settings.smtp.max_recipients:
            return R452_TOO_MANY_RECIPIENTS
        if not is_bounce_address(self.settings, address):
            log.info("rcpt.rejected", rcpt=address, peer=_peer_text(session.peer))
            return R550_NOT_A_BOUNCE_ADDRESS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return R250_RCPT

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the message with its envelope; 250 only after the commit, 451 4.3.0 when storage failed."""
        raw = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        # The null reverse-path (RFC 5321 section 4.5.5) is the normal case for a bounce.
        inbound = Inbound(
            raw=bytes(raw),
            received_at=datetime.now(UTC),
            mail_from="" if mail_from == "<>" else mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            peer=_peer_text(session.peer),
            protocol="lmtp" if self.lmtp else "smtp",
        )
        # No Received: header is added: the stored bytes are exactly what the MTA sent, so a retry of the
        # same message has the same SHA-256 and is recorded once. Envelope, peer and time are stored beside it.
        try:
            ref = await self.committer.submit(inbound)
        except StoreError as exc:
            self._count("tempfail")
            log.warning("message.tempfail", peer=inbound.peer, rcpts=len(inbound.rcpt_tos), size=len(raw), error=str(exc))
            return self._reply(R451_STORAGE, len(inbound.rcpt_tos))
        self._count("accepted")
        # Logged right after the reply is written (aiosmtpd writes it before it next waits for the client;
        # this callback runs then): the sender's next message overlaps our logging instead of waiting for it.
        asyncio.get_running_loop().call_soon(
            functools.partial(
                log.info,
                "message.accepted",
                id=getattr(ref, "message_id", None),
                duplicate=getattr(ref, "duplicate", None),
                peer=inbound.peer,
                mail_from=inbound.mail_from,
                rcpts=list(inbound.rcpt_tos),
                size=len(raw),
                protocol=inbound.protocol,
            )
        )
        return self._reply(R250_QUEUED, len(inbound.rcpt_tos))

    def _reply(self, reply: str, rcpts: int) -> str:
        # LMTP (RFC 2033 section 4.2) answers DATA once per accepted recipient. The message is stored once
        # for all of them, so they all share its fate. aiosmtpd writes the string as-is plus CRLF.
        if self.lmtp and rcpts > 1:
            return "\r\n".join([reply] * rcpts)
        return reply

    async def handle_exception(self, error: Exception) -> str:
        """Our own bug: log it and answer 451 so the MTA retries; never a 5xx for our failure."""
        self._count("error")
        log.error("smtp.exception", error=f"{type(error).__name__}: {error}", exc_info=error)
        return R451_LOCAL_ERROR


@dataclass
class Gate:
    """Connection admission shared by every session of one listener: allowlist and connection cap."""

    settings: Settings
    sessions: set[Any] = field(default_factory=set)  # the protocol object of every open session
    refused: int = 0
    accepting: bool = True
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def open_sessions(self) -> int:
        """Sessions currently connected."""
        return len(self.sessions)

    def busy_sessions(self) -> int:
        """Sessions inside a mail transaction (after MAIL FROM, through DATA and its commit)."""
        return sum(1 for s in self.sessions if getattr(getattr(s, "envelope", None), "mail_from", None))

    def close_sessions(self, reply: str, *, busy_too: bool = False) -> int:
        """Send ``reply`` to idle sessions (and busy ones too when asked) and close them."""
        closed = 0
        for s in list(self.sessions):
            if not busy_too and getattr(getattr(s, "envelope", None), "mail_from", None):
                continue
            transport = getattr(s, "transport", None)
            if transport is None or transport.is_closing():
                continue  # already going (a QUIT a moment ago); a TLS transport then has no protocol to write to
            try:
                transport.write(reply.encode("ascii") + b"\r\n")
                transport.close()
            except (AttributeError, OSError, RuntimeError):  # lost while we looked: it is closed either way
                continue
            closed += 1
        return closed

    def __post_init__(self) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in self.settings.smtp.allow_networks)

    def is_allowed(self, host: str | None) -> bool:
        """True when no allowlist is set, or the client address is inside it."""
        if not self.networks:
            return True
        if host is None:
            return False
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # dual-stack sockets report IPv4 clients as ::ffff:a.b.c.d
        return any(ip in net for net in self.networks)


class _BouncdMixin:
    """What bouncd adds to aiosmtpd's protocol: admission at connect, RFC 3463 codes on aiosmtpd's own 552s."""

    gate: Gate
    _timeout_handle: asyncio.TimerHandle | None  # aiosmtpd's idle timer (set in SMTP.__init__)
    _deadline: float = 0.0  # when the session times out, moved by every command (_reset_timeout)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.gate.sessions.add(self)
        super().connection_made(transport)  # type: ignore[misc]

    def connection_lost(self, error: Exception | None) -> None:
        self.gate.sessions.discard(self)
        super().connection_lost(error)  # type: ignore[misc]

    async def _handle_client(self) -> None:
        peer = self.session.peer  # type: ignore[attr-defined]
        refusal = None
        if not self.gate.is_allowed(_peer_host(peer)):
            refusal = R554_ACCESS_DENIED
        elif not self.gate.accepting:
            refusal = R421_SHUTTING_DOWN
        elif self.gate.open_sessions > self.gate.settings.smtp.max_connections:
            refusal = R421_TOO_MANY_CONNECTIONS
        if refusal is not None:
            # RFC 5321 section 3.1: a server may answer the connection with 554 (or 421) instead of 220.
            self.gate.refused += 1
            log.info("session.refused", peer=_peer_text(peer), reply=refusal[:3])
            await self.push(refusal)
            self.transport.close()  # type: ignore[attr-defined]
            return
        await super()._handle_client()  # type: ignore[misc]

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd cancels its timer and arms a new one on every command (3-5 TimerHandles per message, a
        # heap push each, ~5% of the event loop's time under load). Here the command only moves a deadline;
        # one timer, re-armed only when the deadline came closer than it, checks it when it fires.
        loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[attr-defined]
        deadline = loop.time() + (duration or self._timeout_duration)  # type: ignore[attr-defined]
        self._deadline = deadline
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = loop.call_at(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[attr-defined]
        if loop.time() < self._deadline:  # a command came since: wait for the deadline it set
            self._timeout_handle = loop.call_at(self._deadline, self._check_deadline)
            return
        self._timeout_cb()  # type: ignore[attr-defined]  # aiosmtpd's: log and close the transport

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        fast = simple_path(arg, self.local_part_limit)  # type: ignore[attr-defined]
        if fast is not None:
            return fast
        return super()._getaddr(arg)  # type: ignore[misc,no-any-return]

    async def smtp_DATA(self, arg: str) -> None:
        # aiosmtpd arms command_timeout once per command, not per line read, and leaves it running while
        # the handler waits for the commit: a transfer or a commit slower than command_timeout would drop
        # the session mid-DATA (perhaps after the commit: the MTA retries, a duplicate to store again).
        # RFC 5321 section 4.5.3.2: DATA blocks get 3 minutes, the final dot 10, so DATA gets the longer.
        self._reset_timeout(max(self._timeout_duration, DATA_TIMEOUT_SECONDS))  # type: ignore[attr-defined]
        try:
            await super().smtp_DATA(arg)  # type: ignore[misc]
        finally:
            if self.transport is not None:  # type: ignore[attr-defined]
                self._reset_timeout()  # back to command_timeout for what follows

    async def push(self, status: str | bytes) -> None:
        # aiosmtpd's size replies carry no enhanced status code; RFC 3463 wants 5.3.4 for "too big".
        if isinstance(status, str) and status.startswith("552 Error:"):
            status = R552_TOO_BIG
        await super().push(status)  # type: ignore[misc]


class BouncdSMTP(_BouncdMixin, SMTP):
    """aiosmtpd's SMTP with bouncd's admission and limits."""

    def __init__(self, handler: BounceHandler, gate: Gate, **kwargs: Any) -> None:
        # The StreamReader limit is read from this attribute in SMTP.__init__: real DSNs exceed 1001 bytes.
        self.line_length_limit = gate.settings.smtp.max_line_bytes
        self.gate = gate
        super().__init__(handler, **kwargs)


class BouncdLMTP(_BouncdMixin, LMTP):
    """aiosmtpd's LMTP (RFC 2033) with bouncd's admission and limits."""

    def __init__(self, handler: BounceHandler, gate: Gate, **kwargs: Any) -> None:
        self.line_length_limit = gate.settings.smtp.max_line_bytes
        self.gate = gate
        super().__init__(handler, **kwargs)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The STARTTLS context from the configured certificate and key, or None when TLS is off."""
    if not settings.smtp.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.smtp.tls_cert, settings.smtp.tls_key)
    return ctx


def protocol_factory(settings: Settings, handler: BounceHandler, gate: Gate) -> Callable[[], SMTP]:
    """A factory for loop.create_server: one protocol object per connection."""
    cls = BouncdLMTP if settings.smtp.lmtp else BouncdSMTP
    ctx = tls_context(settings)
    hostname = settings.smtp.hostname or None

    def factory() -> SMTP:
        return cls(
            handler,
            gate,
            data_size_limit=settings.smtp.max_message_bytes,
            hostname=hostname,
            ident="bouncd",
            tls_context=ctx,
            timeout=settings.smtp.command_timeout,
            enable_SMTPUTF8=True,
        )

    return factory
