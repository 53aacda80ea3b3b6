"""Mail gateways that relay the next hop's RCPT refusal inside a DSN without naming the command."""

from __future__ import annotations

from bouncd.analyze import analyze

MCAFEE = """\
From: postmaster@gw.dest.test
To: alice@sender.test
Subject: Delivery Status
X-NAI-Header: Modified by McAfee Email Gateway (7000)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

    --- The following addresses had delivery problems ---

<bob@dest.test>   ({words})

--B
Content-Type: message/delivery-status

Original-Recipient: <bob@dest.test>
Action: failed
Diagnostic-Code: smtp; {words}
Remote-MTA: 192.0.2.55

--B--
"""

MESSAGELABS = """\
From: Mail Delivery System <MAILER-DAEMON@messagelabs.com>
To: alice@sender.test
Subject: Mail Delivery Failure
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail delivery agent at messagelabs.com.
I was unable to deliver your message to the following addresses:

carol@dest.test

Reason: {words}

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; server-7.tower-1.messagelabs.com

Final-Recipient: rfc822; carol@dest.test
Action: failed
Status: 5.0.0
Diagnostic-Code: smtp; {words}

--B--
"""


def test_mcafee_gateway_no_such_user_is_a_dead_address() -> None:
    """McAfee's DSN relays the next hop's RCPT refusal: 'No such user' there is userunknown, hard."""
    report = analyze(MCAFEE.format(words="550 bob@dest.test... No such user").encode())
    (r,) = report.results
    assert (r.recipient, r.reason, r.hard, r.rule) == ("bob@dest.test", "userunknown", True, "mcafee.user-unknown")


def test_mcafee_gateway_spam_refusal_stays_soft() -> None:
    """The gateway hint covers only dead-address wording: a content refusal is never hard."""
    report = analyze(MCAFEE.format(words="550 5.7.1 Message rejected as spam").encode())
    (r,) = report.results
    assert r.reason == "spamdetected" and not r.hard


def test_messagelabs_unknown_user_is_a_dead_address() -> None:
    """MessageLabs words a refused recipient 'No such user' / 'Unknown user' without naming RCPT."""
    report = analyze(MESSAGELABS.format(words="550 carol@dest.test... Unknown user").encode())
    (r,) = report.results
    assert (r.recipient, r.reason, r.hard) == ("carol@dest.test", "userunknown", True)


def test_the_same_words_from_an_unknown_gateway_stay_soft() -> None:
    """Without the gateway's own header the same unplaced words may be a filter's: never hard."""
    raw = MCAFEE.format(words="550 bob@dest.test... No such user").replace("X-NAI-Header: Modified by McAfee", "X-Other: x")
    (r,) = analyze(raw.encode()).results
    assert not r.hard
