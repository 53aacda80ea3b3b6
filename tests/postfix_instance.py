"""A throw-away Postfix instance for the end-to-end tests: own config and queue in a temp dir, loopback only.

Nothing here touches the system Postfix (``/etc/postfix``, ``/var/spool/postfix``): the instance runs from
``postfix -c DIR`` with its own ``queue_directory`` and ``data_directory``, listens on one 127.0.0.1 port,
binds its clients to 127.0.0.1, and routes every domain the tests use through ``transport_maps``;
anything else goes to ``error:`` (``default_transport``), so no mail can leave the machine.

DNS: only smtp(8) is chrooted (into our queue directory), so its resolver reads our ``etc/resolv.conf``,
which names a stub on 127.53.X.Y:53 answering NXDOMAIN for every name. The address is random per
instance, so test runs side by side do not collide, and is never 127.0.0.1 or 127.0.0.53, where a local
resolver may live. A domain that does not resolve is bounced by Postfix itself with 5.4.4, on any
machine, with or without network.

Postfix must run as root (master(8) and the chroot); without postfix or root the tests skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import smtplib
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from pathlib import Path

POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", ""))
POSTQUEUE = shutil.which("postqueue", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", ""))
APP_HOST = "127.0.0.2"  # the sending application's address (mynetworks)


def why_no_postfix() -> str | None:
    """None when a test Postfix can run here, else the reason to skip."""
    if POSTFIX is None or POSTQUEUE is None:
        return "postfix is not installed (apt-get install postfix; .ci/run does)"
    if os.geteuid() != 0:
        return "postfix's master(8) must run as root"
    try:
        _bind_dns_socket().close()
    except OSError as exc:
        return f"cannot bind a DNS stub on 127.53.X.Y:53: {exc.strerror}"
    return None


def _bind_dns_socket() -> socket.socket:
    """A UDP socket on port 53 of a random, unused 127.53.X.Y address."""
    last: OSError | None = None
    for _ in range(50):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((f"127.53.{random.randrange(256)}.{random.randrange(1, 255)}", 53))
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    assert last is not None
    raise last


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


class NxdomainStub:
    """A DNS server on 127.53.X.Y:53 that answers NXDOMAIN to every question (RFC 1035 section 4.1.1)."""

    def __init__(self) -> None:
        self._sock = _bind_dns_socket()
        self.host = str(self._sock.getsockname()[0])
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self.queries: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True, name="dns-stub")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            if len(data) < 17:
                continue
            qid, flags = struct.unpack(">HH", data[:4])
            i, labels = 12, []
            while i < len(data) and data[i] != 0:
                labels.append(data[i + 1 : i + 1 + data[i]].decode("ascii", "replace"))
                i += 1 + data[i]
            self.queries.append(".".join(labels).lower())
            question = data[12 : i + 5]
            # QR=1, RD copied, RA=1, RCODE=3 (NXDOMAIN); one question, no answers.
            header = struct.pack(">HHHHHH", qid, 0x8183 | (flags & 0x0100), 1, 0, 0, 0)
            with contextlib.suppress(OSError):
                self._sock.sendto(header + question, peer)

    def close(self) -> None:
        """Stop answering and free the port."""
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def master_cf(pipe_argv: str | None, pipe_user: str) -> str:
    """master.cf: one loopback smtpd, the daemons a queue needs, and optionally the bouncd pipe(8) service."""
    # service type private unpriv chroot wakeup maxproc command. Only smtp(8) is chrooted (the DNS above).
    rows = [
        "smtpd-in  inet  n - n - - smtpd",  # replaced by the listening address in PostfixInstance
        "pickup    unix  n - n 60 1 pickup",
        "cleanup   unix  n - n - 0 cleanup",
        "qmgr      unix  n - n 300 1 qmgr",
        "rewrite   unix  - - n - - trivial-rewrite",
        "bounce    unix  - - n - 0 bounce",
        "defer     unix  - - n - 0 bounce",
        "trace     unix  - - n - 0 bounce",
        "verify    unix  - - n - 1 verify",
        "flush     unix  n - n 1000? 0 flush",
        "proxymap  unix  - - n - - proxymap",
        "proxywrite unix - - n - 1 proxymap",
        "smtp      unix  - - y - - smtp",
        "relay     unix  - - y - - smtp",
        "showq     unix  n - n - - showq",
        "error     unix  - - n - - error",
        "retry     unix  - - n - - error",
        "discard   unix  - - n - - discard",
        "local     unix  - n n - - local",
        "lmtp      unix  - - n - - lmtp",
        "anvil     unix  - - n - 1 anvil",
        "scache    unix  - - n - 1 scache",
        "postlog   unix-dgram n - n - 1 postlogd",
    ]
    if pipe_argv:
        rows.append(f"bouncd    unix  - n n - - pipe\n  flags=Rq user={pipe_user} argv={pipe_argv}")
    return "\n".join(rows) + "\n"


class PostfixInstance:
    """One Postfix (``postfix -c DIR``) with its own queue, a loopback smtpd port and the given routes."""

    def __init__(
        self,
        transport: Mapping[str, str],
        *,
        settings: Mapping[str, str] | None = None,
        pipe_argv: str | None = None,
        pipe_user: str = "nobody",
    ) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="bouncd-postfix-"))
        self.base.chmod(0o755)  # the postfix user walks into queue/ and data/
        self.config = self.base / "etc"
        self.queue = self.base / "queue"
        self.log = self.base / "maillog"
        self.port = free_port()
        self.config.mkdir()
        (self.config / "transport").write_text("".join(f"{dom} {dest}\n" for dom, dest in transport.items()))
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.base / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "maillog_file": str(self.log),
            "maillog_file_prefixes": str(self.base),
            "myhostname": "mx.bouncd.test",
            "mydomain": "bouncd.test",
            "myorigin": "$myhostname",
            "mydestination": "$myhostname",
            "local_recipient_maps": "",  # accept at RCPT, so local(8) itself bounces an unknown user
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "smtp_bind_address": "127.0.0.1",
            "lmtp_bind_address": "127.0.0.1",
            # The sending app connects from 127.0.0.2 (trusted, may relay); 127.0.0.1 plays the Internet.
            "mynetworks": "127.0.0.2/32",
            "relayhost": "",
            "relay_domains": "",
            "transport_maps": f"texthash:{self.config / 'transport'}",
            # Never relay off the machine: anything not routed above is returned, not sent.
            "default_transport": "error:5.7.1 test instance: no route off this machine",
            "smtputf8_enable": "no",
            "biff": "no",
            "smtp_connect_timeout": "5s",
            "smtp_helo_timeout": "10s",
            "lmtp_connect_timeout": "5s",
            # Queue timers in seconds, so deferrals, delay warnings and retries happen within the test.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "delay_warning_time": "2s",
            "maximal_queue_lifetime": "1h",
            "bounce_queue_lifetime": "1h",
            "in_flow_delay": "0s",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
        }
        main.update(settings or {})
        (self.config / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        (self.config / "master.cf").write_text(
            master_cf(pipe_argv, pipe_user).replace("smtpd-in  inet", f"127.0.0.1:{self.port} inet", 1)
        )
        # smtp(8) runs chrooted in the queue directory: its resolver and service lookups read these.
        self.dns = NxdomainStub()
        jail = self.queue / "etc"
        jail.mkdir(parents=True)
        (jail / "resolv.conf").write_text(f"nameserver {self.dns.host}\noptions attempts:1 timeout:1\n")
        (jail / "nsswitch.conf").write_text("hosts: files dns\nservices: files\n")
        (jail / "hosts").write_text("127.0.0.1 localhost\n")
        for name in ("services", "localtime"):
            if Path("/etc", name).exists():
                shutil.copy(Path("/etc", name), jail / name)
        self._started = False

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``postfix -c DIR ARGS``."""
        assert POSTFIX is not None
        return subprocess.run([POSTFIX, "-c", str(self.config), *args], capture_output=True, text=True, check=check, timeout=60)

    def start(self) -> None:
        """Create the queue directories (``postfix check``) and start master(8); wait until smtpd answers."""
        for args in (("check",), ("start",)):
            res = self.run(*args, check=False)
            if res.returncode != 0:
                raise RuntimeError(f"postfix {args[0]} failed: {res.stdout}{res.stderr}{self.maillog()}")
        self._started = True

        def answers() -> bool:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as s:
                    return s.noop()[0] == 250
            except OSError:
                return False

        if not wait_for(answers, 20):
            raise RuntimeError(f"postfix smtpd on 127.0.0.1:{self.port} did not answer\n{self.maillog()}")

    def stop(self) -> None:
        """Stop master(8) and its children, stop the DNS stub, remove the directory."""
        if self._started:
            self.run("abort", check=False)  # abort: no need to finish deliveries in a throw-away queue
            self._started = False
        self.dns.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def send(self, mail_from: str, rcpt: str, subject: str, *, notify: str = "FAILURE,DELAY") -> str:
        """Submit one campaign message over SMTP (as a sending app would); returns its Message-ID."""
        msg = EmailMessage()
        msg["From"] = "News <news@bouncd.test>"
        msg["To"] = rcpt
        msg["Subject"] = subject
        msg["Message-ID"] = mid = f"<{subject.replace(' ', '-')}-{time.monotonic_ns()}@bouncd.test>"
        msg.set_content(f"Hello,\n\nthis is {subject}.\n")
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30, source_address=(APP_HOST, 0)) as s:
            s.ehlo("app.bouncd.test")
            # RFC 3461: ask for failure and delay notices explicitly (Postfix's default would too).
            s.send_message(msg, from_addr=mail_from, to_addrs=[rcpt], rcpt_options=[f"NOTIFY={notify}"])
        return mid

    def receive_from_internet(self, mail_from: str, rcpt: str, raw: bytes) -> tuple[int, bytes]:
        """A remote MX hands Postfix a message (from 127.0.0.1, outside mynetworks); the reply to RCPT or DATA."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            s.ehlo("mx.remote.example")
            s.mail(mail_from)
            code, reply = s.rcpt(rcpt)
            if code != 250:
                return code, reply
            return s.data(raw)

    def flush(self) -> None:
        """``postqueue -f``: try every deferred message now."""
        assert POSTQUEUE is not None
        subprocess.run([POSTQUEUE, "-c", str(self.config), "-f"], capture_output=True, check=True, timeout=30)

    def queued(self) -> list[dict[str, object]]:
        """The queue as ``postqueue -j`` prints it: one dict per message (queue_name, sender, recipients...)."""
        assert POSTQUEUE is not None
        out = subprocess.run([POSTQUEUE, "-c", str(self.config), "-j"], capture_output=True, text=True, timeout=30)
        return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]

    def maillog(self) -> str:
        """The instance's log (maillog_file), for failure messages."""
        return self.log.read_text(errors="replace") if self.log.exists() else "(no maillog)"
