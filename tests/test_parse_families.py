"""Each non-standard MTA family's text bounce is read for recipient, status, reply code, command and words."""

from __future__ import annotations

import pytest

from bouncd.parse import parse_message
from bouncd.parse.base import find_command, find_reply_code, find_status
from bouncd.parse.fields import block_failure, parse_blocks
from bouncd.records import Kind


def _mail(headers: str, body: str) -> bytes:
    return (headers.strip() + "\n\n" + body.lstrip("\n")).encode()


DMA = _mail(
    """
From: MAILER-DAEMON <>
To: alice@sender.test
Subject: Mail delivery failed
""",
    """
This is the DragonFly Mail Agent v0.13 at relay.sender.test.

There was an error delivering your mail to <bob@dest.test>.

mx.dest.test [192.0.2.7] did not like our RCPT TO:
550 5.1.1 <bob@dest.test>: Recipient address rejected: User unknown

Original message follows.

Subject: hello
To: <bob@dest.test>
""",
)

QMAIL = _mail(
    """
From: MAILER-DAEMON@mx.sender.test
To: alice@sender.test
Subject: failure notice
""",
    """
Hi. This is the qmail-send program at mx.sender.test.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<carol@dest.test>:
192.0.2.9 does not like recipient.
Remote host said: 552 5.2.2 <carol@dest.test>... Mailbox full
Giving up on 192.0.2.9.

<dave@gone.test>:
Sorry, I couldn't find any host named gone.test. (#5.1.2)

--- Below this line is a copy of the message.

Return-Path: <alice@sender.test>
To: carol@dest.test
""",
)

EXIM = _mail(
    """
From: Mail Delivery System <Mailer-Daemon@relay.sender.test>
To: alice@sender.test
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied
""",
    """
This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  erin@dest.test
    host mx.dest.test [192.0.2.3]
    SMTP error from remote mail server after RCPT TO:<erin@dest.test>:
    550 5.7.1 <erin@dest.test>: Relay access denied
  frank@dest.test
    retry timeout exceeded

------ This is a copy of the message, including all the headers. ------

Return-path: <alice@sender.test>
Subject: hi
""",
)

EXIM_DELAY = _mail(
    """
From: Mail Delivery System <Mailer-Daemon@relay.sender.test>
To: alice@sender.test
Subject: Warning: message 1abc-000 delayed 24 hours
Auto-Submitted: auto-replied
""",
    """
This message was created automatically by mail delivery software.

A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on relay.sender.test.

The address to which the message has not yet been delivered is:

  gina@dest.test
    host mx.dest.test [192.0.2.4]
    Delay reason: SMTP error from remote mail server after MAIL FROM:<alice@sender.test> SIZE=10:
    451 4.7.1 Greylisted, try later

No action is required on your part.
""",
)

SENDMAIL_TEXT = _mail(
    """
From: Mail Delivery Subsystem <MAILER-DAEMON@relay.sender.test>
To: alice@sender.test
Subject: Returned mail: see transcript for details
""",
    """
The original message was received at Thu, 1 Jan 2026 10:00:00 +0000
from localhost [127.0.0.1]

   ----- The following addresses had permanent fatal errors -----
<hana@dest.test>
    (reason: 550 5.1.1 <hana@dest.test>... User unknown)

   ----- Transcript of session follows -----
... while talking to mx.dest.test.:
>>> DATA
<<< 550 5.1.1 <hana@dest.test>... User unknown
550 5.1.1 <hana@dest.test>... User unknown

   ----- Original message follows -----
Subject: hi
""",
)

V5_TRANSCRIPT = _mail(
    """
From: Mail Delivery Subsystem <MAILER-DAEMON@old.sender.test>
To: alice@sender.test
Subject: Returned mail: User unknown
""",
    """
   ----- Transcript of session follows -----
While talking to mx.dest.test:
>>> RCPT To:<ivan@dest.test>
<<< 550 Requested mailbox not found
550 <ivan@dest.test>... User unknown
554 <judy@nowhere.test>... 550 Host unknown (Authoritative answer from name server)
   ----- Unsent message follows -----
Subject: hi
""",
)

POSTFIX_TEXT = _mail(
    """
From: MAILER-DAEMON@relay.sender.test (Mail Delivery System)
To: alice@sender.test
Subject: Undelivered Mail Returned to Sender
""",
    """
This is the mail system at host relay.sender.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

                   The mail system

<kim@dest.test>: host mx.dest.test[192.0.2.5] said: 554 5.7.1 Service unavailable;
    client blocked using zen.example (in reply to RCPT TO command)
""",
)

OPENSMTPD = _mail(
    """
From: Mailer Daemon <MAILER-DAEMON@relay.sender.test>
To: alice@sender.test
Subject: Delivery status notification: error
""",
    """
    Hi!

    This is the MAILER-DAEMON, please DO NOT REPLY to this e-mail.

    An error has occurred while attempting to deliver a message for
    the following list of recipients:

lee@dest.test: 550 5.2.2 <lee@dest.test>... Mailbox Full
max@dest.test: Envelope expired

    Below is a copy of the original message:

Subject: hi
""",
)

DSN_IN_TEXT = _mail(
    """
From: MAILER-DAEMON@relay.sender.test
To: alice@sender.test
Subject: Delivery Status Notification (Failure)
""",
    """
An error occurred while trying to deliver the mail to the following recipients:
nina@dest.test

Technical report:

Reporting-MTA: dsn; relay.sender.test

Action: failed
Final-Recipient: rfc822; nina@dest.test
Diagnostic-Code: smtp; 550 5.2.2 <nina@dest.test>... Mailbox Full
Status: 5.2.2
""",
)


@pytest.mark.parametrize(
    ("raw", "detector", "expected"),
    [
        (DMA, "dragonfly", [("bob@dest.test", "5.1.1", "550", "RCPT", None)]),
        (
            QMAIL,
            "qmail",
            [("carol@dest.test", "5.2.2", "552", "RCPT", None), ("dave@gone.test", "5.1.2", None, None, "hostunknown")],
        ),
        (EXIM, "exim", [("erin@dest.test", "5.7.1", "550", "RCPT", None), ("frank@dest.test", None, None, None, "expired")]),
        (SENDMAIL_TEXT, "sendmail", [("hana@dest.test", "5.1.1", "550", "DATA", None)]),
        (
            V5_TRANSCRIPT,
            "sendmail",
            [("ivan@dest.test", None, "550", "RCPT", None), ("judy@nowhere.test", None, "550", None, None)],
        ),
        (POSTFIX_TEXT, "postfix", [("kim@dest.test", "5.7.1", "554", "RCPT", None)]),
        (OPENSMTPD, "opensmtpd", [("lee@dest.test", "5.2.2", "550", None, None), ("max@dest.test", None, None, None, "expired")]),
        (DSN_IN_TEXT, "dsn-in-text", [("nina@dest.test", "5.2.2", "550", None, None)]),
    ],
    ids=["dma", "qmail", "exim", "sendmail-text", "v5-transcript", "postfix-text", "opensmtpd", "dsn-fields-in-text"],
)
def test_family_report_is_read_per_recipient(
    raw: bytes, detector: str, expected: list[tuple[str, str | None, str | None, str | None, str | None]]
) -> None:
    """The family's detector claims the message and reads every recipient's status, code, command and hint."""
    parsed = parse_message(raw)
    assert parsed.kind is Kind.BOUNCE, parsed.error
    assert parsed.detector == detector
    got = [(f.recipient, f.status, f.reply_code, f.command, f.reason_hint) for f in parsed.failures]
    assert got == expected
    for f in parsed.failures:
        assert f.diagnostic, f
        assert f.recipient != "alice@sender.test"  # the original sender is never blamed


def test_exim_delay_warning_is_a_delayed_bounce_not_an_auto_reply() -> None:
    """Exim's delay warning carries Auto-Submitted but is a delayed delivery report."""
    parsed = parse_message(EXIM_DELAY)
    assert parsed.kind is Kind.BOUNCE
    (f,) = parsed.failures
    assert (f.recipient, f.action, f.status, f.reply_code, f.command) == ("gina@dest.test", "delayed", "4.7.1", "451", "MAIL")
    assert f.diagnostic == "451 4.7.1 Greylisted, try later"
    assert f.remote_mta == "mx.dest.test"


def test_postfix_words_drop_the_in_reply_to_note_and_unfold() -> None:
    """Postfix's '(in reply to RCPT TO command)' becomes the command, not part of the server's words."""
    (f,) = parse_message(POSTFIX_TEXT).failures
    assert f.diagnostic == "554 5.7.1 Service unavailable; client blocked using zen.example"


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("550 5.1.1 <a@b.example>... User unknown", "5.1.1"),
        ("5.1.0 - Unknown address error 550-'5.7.1 <x@y.example>... Access denied'", "5.7.1"),
        ("554 4.4.7 Message expired: unable to deliver in 840 minutes.<421 4.4.2 Connection timed out>", "4.4.2"),
        ("550 5.0.0 see 5.7.26 policy", "5.7.26"),
        ("host 192.0.2.1 said: 550 rejected", None),
        ("Exim 4.96.1 and v4.1.2 here", None),
        ("5.0.0", "5.0.0"),
    ],
)
def test_status_is_the_most_specific_code_in_the_words(text: str, status: str | None) -> None:
    """The remote's code after a reply code wins; generic X.0.0/4.4.7 only as a last resort; IPs/versions are no codes."""
    assert find_status(text) == status


def test_reply_code_prefers_the_class_of_the_status() -> None:
    """With a 4.x.x status, the 4yz reply in the words is the one that goes with it."""
    assert find_reply_code("554 4.4.7 Message expired <421 4.4.2 Connection timed out>", "4.4.2") == "421"
    assert find_reply_code("550 5.1.1 nope") == "550"
    assert find_reply_code("host 192.0.2.250 said nothing") is None


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("550 nope (in reply to RCPT TO command)", "RCPT"),
        ("SMTP error from remote mail server after end of data:", "DATA"),
        ("mx did not like our final DATA:", "DATA"),
        (">>> MAIL From:<a@b.example>", "MAIL"),
        ("192.0.2.1 does not like recipient.", "RCPT"),
        ("Connected to 192.0.2.1 but sender was rejected.", "MAIL"),
        ("User unknown", None),
    ],
)
def test_command_is_read_from_each_mta_wording(text: str, command: str | None) -> None:
    """Each MTA names the SMTP stage its own way; all map to RCPT/MAIL/DATA/HELO/CONN."""
    assert find_command(text) == command


def test_dsn_blocks_split_without_blank_lines_and_keep_unindented_diagnostic_lines() -> None:
    """Recipient blocks run together, and a Diagnostic-Code continued on '550-' lines, are still read."""
    text = (
        "Reporting-MTA: dns; mx.test\n"
        "Original-Recipient: rfc822;a@dest.test\nFinal-Recipient: rfc822;a@dest.test\nAction: failed\n"
        "Status: 5.0.0\nDiagnostic-Code: smtp; 550-Please turn on SMTP Authentication\n550 relay denied\n"
        "Original-Recipient: rfc822;b@dest.test\nFinal-Recipient: rfc822;b@dest.test\nAction: delayed\nStatus: 4.0.0\n"
    )
    blocks = [b for b in parse_blocks(text) if "final-recipient" in b]
    failures = [block_failure(b) for b in blocks]
    assert [(f.recipient, f.action) for f in failures] == [("a@dest.test", "failed"), ("b@dest.test", "delayed")]
    assert failures[0].diagnostic == "550-Please turn on SMTP Authentication 550 relay denied"


def test_x_unix_diagnostic_is_a_local_mailer_failure() -> None:
    """RFC 3464 diagnostic-type X-Unix carries a program's exit code, not an SMTP reply."""
    (block,) = parse_blocks("Final-Recipient: rfc822; a@dest.test\nAction: failed\nStatus: 5.0.0\nDiagnostic-Code: X-Unix; 255\n")
    f = block_failure(block)
    assert (f.reply_code, f.reason_hint, f.hint_rule) == (None, "mailererror", "dsn.x-unix-diagnostic")


def test_expiry_status_stays_when_the_diagnostic_is_only_the_last_try() -> None:
    """Status 4.4.7 (queue lifetime over) is kept over the last attempt's 4.4.1 in the diagnostic."""
    (block,) = parse_blocks(
        "Final-Recipient: rfc822; a@dest.test\nAction: failed\nStatus: 4.4.7\n"
        "Diagnostic-Code: SMTP; 451 4.4.1 reply: read error\n"
    )
    assert block_failure(block).status == "4.4.7"
