"""classify() on hand-written failures: one case per reason family, and the soft-versus-hard traps.

Each case is a failure as a detector would hand it over (status, reply code, the server's words, the
SMTP command when known) and the reason/hardness a careful human would give it.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bouncd.classify import PROVIDER_RULES, PROVIDERS, STATUS_RULES, TEXT_RULES, classify
from bouncd.classify.command import infer_command
from bouncd.classify.providers import providers_for
from bouncd.classify.rules import normalize
from bouncd.classify.status import reason_for_status
from bouncd.records import Failure, Kind, Reason

RCPT = "kijitora@example.jp"


def fail(diag: str = "", status: str | None = None, reply: str | None = None, command: str | None = None,
         action: str | None = "failed", rcpt: str = RCPT, mta: str | None = None) -> Failure:
    return Failure(recipient=rcpt, action=action, status=status, reply_code=reply, diagnostic=diag,
                   command=command, remote_mta=mta)


# (id, failure, expected reason, expected hard)
CASES = [
    # -- dead addresses: hard -----------------------------------------------------------------------
    ("postfix 5.1.1 user unknown at RCPT is hard",
     fail("550 5.1.1 <kijitora@example.jp>: Recipient address rejected: User unknown in local recipient table",
          "5.1.1", "550", "RCPT"), "userunknown", True),
    ("a final report of 450 4.1.1 user unknown at RCPT is a dead address (the class lies)",
     fail("450 4.1.1 <kijitora@example.jp>: Recipient address rejected: User unknown", "4.1.1", "450", "RCPT"),
     "userunknown", True),
    ("postfix's 'delivery temporarily suspended:' is about the delivery, not a suspended mailbox",
     fail("delivery temporarily suspended: connect to mx.example.jp[192.0.2.1]:25: Connection timed out", "4.4.1"),
     "expired", False),
    ("a delay notice of 450 4.1.1 user unknown is not hard yet",
     fail("450 4.1.1 <kijitora@example.jp>: Recipient address rejected: User unknown", "4.1.1", "450", "RCPT",
          action="delayed"), "userunknown", False),
    ("a delay notice is never hard", fail("550 5.1.1 User unknown", "5.1.1", "550", "RCPT", action="delayed"),
     "userunknown", False),
    ("status 5.1.1 alone names the address", fail("", "5.1.1", "550"), "userunknown", True),
    ("exim 'no such user' answered to RCPT TO (command read from the text)",
     fail("SMTP error from remote mail server after RCPT TO:<kijitora@example.jp>: 550 No such user here", None, "550"),
     "userunknown", True),
    ("unknown domain with 5.1.2", fail("Host or domain name not found. Name service error for name=example.jp type=A",
                                       "5.1.2"), "hostunknown", True),
    ("address has moved (5.1.6)", fail("551 5.1.6 recipient no longer on server: kijitora@example.jp", "5.1.6", "551"),
     "hasmoved", True),
    ("RFC 7505 null MX with 5.1.10 is a permanent notaccept", fail("556 5.1.10 domain has null MX", "5.1.10", "556"),
     "notaccept", True),
    ("RFC 7504 556 reply: the domain does not accept mail", fail("556 example.jp does not accept mail", None, "556"),
     "notaccept", True),
    # -- soft traps: words that look fatal but are not about the address ------------------------------
    ("5.2.2 mailbox full is soft even with a 5xx", fail("552 5.2.2 <kijitora@example.jp>... Mailbox Full", "5.2.2", "552"),
     "mailboxfull", False),
    ("over quota wording without a status", fail("user is over quota"), "mailboxfull", False),
    ("'user unknown' after DATA is a recipient-side filter (docomo style)",
     fail("550 Unknown user kijitora@example.jp", "5.0.0", "550", "DATA"), "filtered", False),
    ("'user unknown' with no command and a generic status is not proof of a dead address",
     fail("550 Unknown user kijitora@example.jp", "5.0.0", "550"), "filtered", False),
    ("generic 'mailbox unavailable' refusal naming a blocklist is a block, not a dead address",
     fail("550 Requested action not taken: mailbox unavailable (blocked using zen.spamhaus.org)", "5.7.1", "550", "RCPT"),
     "blocked", False),
    ("'no such user' words next to a spam verdict are the spam filter's",
     fail("550 Rejected: no such user or message looks like spam", "5.0.0", "550", "RCPT"), "spamdetected", False),
    ("a full spool worded as 'mailbox unavailable' is a full system, not a dead address",
     fail("452 Requested action not taken: mailbox unavailable (not enough free space)", None, "452", "RCPT"),
     "systemfull", False),
    ("Gmail state 18 'Unknown user' happened after DATA: a filter",
     fail("Google tried to deliver your message, but it was rejected by the recipient domain. The error that the other "
          "server returned was: 550 550 Unknown user kijitora@example.jp (state 18).", None, "550"), "filtered", False),
    ("450 'mailbox unavailable' is RFC 5321's busy/temporarily-blocked text, not a dead address",
     fail("450 4.2.0 Requested mail action not taken: mailbox unavailable", "4.2.0", "450", "RCPT"), "onhold", False),
    ("Postfix recipient access REJECT is a policy on the recipient, not an unknown user",
     fail("554 5.7.1 <kijitora@example.jp>: Recipient address rejected: Access denied", "5.7.1", "554", "RCPT"),
     "filtered", False),
    ("an X.1.1 status outranks DATA: the MTA's own verdict on the address",
     fail("550 unknown user", "5.1.1", "550", "DATA"), "userunknown", True),
    ("the cause outranks the queue giving up because of it",
     fail("Unable to contact LDAP server. (#4.4.3)I'm not going to try again; this message has been in the queue "
          "too long.", "4.4.3"), "systemerror", False),
    ("the queue's final verdict outranks the last connection error",
     fail("Deferred: Connection refused by [192.0.2.1] Message could not be delivered for 5 days", "4.4.7"),
     "expired", False),
    ("a sending quota is a rate limit, not a full mailbox",
     fail("454 Throttling failure: Daily message quota exceeded.", None, "454"), "toomanyconn", False),
    ("Domino directory miss", fail("User Neko (kijitora@example.jp) not listed in Domino Directory"),
     "userunknown", True),
    ("5xx to MAIL FROM is about the sender even if it says 'does not exist'",
     fail("SMTP error from remote mail server after MAIL FROM:<neko@example.org>: 553 5.1.8 "
          "Domain of sender address neko@example.org does not exist", "5.1.8", "553"), "rejected", False),
    ("5xx to MAIL FROM with 'user unknown' words stays soft",
     fail("550 5.1.1 <neko@example.org>... User unknown", "5.1.1", "550", "MAIL"), "rejected", False),
    ("refusal at the greeting is a blocked host", fail("554 mx.example.jp ESMTP service not available", None, "554",
                                                       "CONN"), "blocked", False),
    ("HELO refused is blocked", fail("Connected to 192.0.2.1 but my name was rejected. Remote host said: 501 5.0.0 "
                                     "Invalid domain name", "5.0.0", "501"), "blocked", False),
    ("temporary DNS failure is a network error, not an unknown host",
     fail("Name service error for domain example.jp: Host not found, try again"), "networkerror", False),
    ("4xx 'domain name not found' is a lookup that may succeed later",
     fail("DNS Error: DNS type 'mx' lookup of example.jp responded with code NXDOMAIN Domain name not found",
          "4.0.0"), "networkerror", False),
    ("null MX answered with a temporary status stays soft",
     fail("The domain example.jp doesn't receive email according to the administrator: returned Null MX", "4.0.0"),
     "notaccept", False),
    ("disabled account is suspend, not unknown", fail("550 5.2.1 The email account that you tried to reach is disabled",
                                                      "5.2.1", "550", "RCPT"), "suspend", False),
    ("sender null MX (5.7.27) is about the sender", fail("", "5.7.27", "550"), "rejected", False),
    ("5.1.0 alone does not say whose address", fail("", "5.1.0", "550"), "onhold", False),
    ("local mailer exit status (X-Unix; 255) with a generic status", fail("255", "4.5.0"), "mailererror", False),
    ("a bare exit status yields to a status naming the cause", fail("77", "5.3.0"), "systemerror", False),
    ("procmail failure mentioning 'No such user' is a mailer error",
     fail('procmail: Couldn\'t create "/var/spool/mail/neko" No such user', "5.1.1"), "mailererror", False),
    # -- other families ----------------------------------------------------------------------------
    ("relaying denied", fail("554 5.7.1 <kijitora@example.jp>: Relay access denied", "5.7.1", "554", "RCPT"),
     "norelaying", False),
    ("SPF failure", fail("550 5.7.23 SPF validation failed for example.org", "5.7.23", "550"), "authfailure", False),
    ("DMARC policy rejection", fail("550 5.7.1 Email rejected per DMARC policy for example.org", "5.7.1", "550"),
     "authfailure", False),
    ("missing PTR", fail("550 5.7.25 The IP address sending this message does not have a PTR record setup",
                         "5.7.25", "550"), "requireptr", False),
    ("DNSBL listing", fail("554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
                           "5.7.1", "554", "RCPT"), "blocked", False),
    ("spam content after DATA", fail("550 5.7.1 Message content rejected, UBE, id=00000-00-000", "5.7.1", "550", "DATA"),
     "spamdetected", False),
    ("IP reputation", fail("550-5.7.1 Our system has detected that this message is likely suspicious due to the very "
                           "low reputation of the sending IP address", "5.7.1", "550"), "badreputation", False),
    ("virus", fail("554 5.7.0 Your message was infected with a virus", "5.7.0", "554", "DATA"), "virusdetected", False),
    ("message too big", fail("552 5.3.4 Message size exceeds fixed limit", "5.3.4", "552"), "mesgtoobig", False),
    ("per-recipient size limit is exceedlimit", fail("552 5.2.3 Message length exceeds administrative limit",
                                                     "5.2.3", "552"), "exceedlimit", False),
    ("too many connections", fail("421 4.3.2 Too many connections from your host", "4.3.2", "421"),
     "toomanyconn", False),
    ("connection rate limit is toomanyconn", fail("452 4.3.2 Connection rate limit exceeded.", "4.3.2", "452"),
     "toomanyconn", False),
    ("sending too fast", fail("451 4.7.1 Client host rejected: Please try again slower", "4.7.1", "451"),
     "speeding", False),
    ("sender verify failed", fail("550 Sender verify failed", None, "550", "RCPT"), "rejected", False),
    ("TLS required", fail("530 5.7.0 Must issue a STARTTLS command first", "5.7.0", "530"), "securityerror", False),
    ("the receiving server lacking TLS is its system's problem",
     fail("500 Remote server does not support TLS (state 6).", None, "500"), "systemerror", False),
    ("relaying refused until the client authenticates is a security setting",
     fail("550-Please turn on SMTP Authentication in your mail client. 550-mx.example.jp is not permitted to "
          "550 relay through this server without authentication.", "5.0.0", "550"), "securityerror", False),
    ("queue lifetime", fail("Retry time not reached for any host after a long failure period"), "expired", False),
    ("delayed action with nothing else", fail("", None, None, action="delayed"), "expired", False),
    ("mail loop", fail("554 5.4.6 Too many hops", "5.4.6", "554"), "networkerror", False),
    ("RFC 5322 non-compliance", fail("550-5.7.1 This message is not RFC 5322 compliant. There are multiple Subject "
                                     "550-5.7.1 headers.", "5.7.1", "550"), "notcompliantrfc", False),
    ("8-bit header content", fail("550 5.6.9 improper use of 8-bit data in message header", "5.6.9", "550"),
     "contenterror", False),
    ("policy reasons", fail("554 Mail from neko@example.org rejected for policy reasons.", "5.0.0", "554"),
     "policyviolation", False),
    ("system error", fail("451 4.3.0 Local configuration error", "4.3.0", "451"), "systemerror", False),
    ("bad command sequence reply", fail("", None, "503"), "syntaxerror", False),
    ("account disabled reply 525", fail("", None, "525"), "suspend", False),
    ("words with no known pattern", fail("550 Something odd happened", "5.0.0", "550"), "onhold", False),
    ("nothing at all", fail(""), "undefined", False),
    # -- reporting-MTA codes -----------------------------------------------------------------------
    ("Exchange RecipNotFound is an unknown recipient", fail("#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##",
                                                            "5.1.1", "550"), "userunknown", True),
    ("Exchange RecipSizeLimit is the recipient's own limit",
     fail("550 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient", "5.2.3", "550"),
     "exceedlimit", False),
    ("too many Received headers is a mail loop", fail('Too many "Received" headers - suspected mail loop', "5.4.6"),
     "networkerror", False),
    ("Exchange QUEUE.Expired", fail("550 4.4.7 QUEUE.Expired; message expired", "4.4.7", "550"), "expired", False),
    ("PowerMTA bad-mailbox category", fail("550 5.2.1 <a@b.example>... User Unknown X-PowerMTA-BounceCategory: "
                                           "bad-mailbox", "5.2.1", "550"), "userunknown", True),
    # -- provider rules ----------------------------------------------------------------------------
    ("Orange OFR_416 is an invalid recipient", fail("550 5.1.1 Adresse d au moins un destinataire invalide. "
                                                    "Invalid recipient. OFR_416 [416]", "5.1.1", "550", "RCPT",
                                                    rcpt="neko@orange.fr"), "userunknown", True),
    ("Orange OFR_417 is a full mailbox", fail("552 5.1.1 Boite du destinataire pleine. Recipient overquota. "
                                              "OFR_417 [417]", "5.1.1", "552", "RCPT", rcpt="neko@wanadoo.fr"),
     "mailboxfull", False),
    ("Cox AUP#CXBL is an IP block", fail("554 AUP#CXBL", None, "554", rcpt="neko@cox.net"), "blocked", False),
    ("Exchange Online 5.4.1 access denied is an unknown recipient",
     fail("550 5.4.1 Recipient address rejected: Access denied. [AM0PR01.prod.protection.outlook.com]",
          "5.4.1", "550", "RCPT"), "userunknown", True),
    ("Exchange Online submission quota is a rate limit even with a 5.2.2 status",
     fail("550 5.2.2 Submission quota exceeded [AM0PR01.prod.protection.outlook.com]", "5.2.2", "550"),
     "speeding", False),
    ("KDDI '550 : User unknown' is the recipient's filter",
     fail("550 : User unknown", "5.2.0", "550", mta="lsean.ezweb.ne.jp"), "filtered", False),
    ("Tencent frequency limit", fail("550 Connection frequency limited", "5.0.0", "550", rcpt="neko@qq.com"),
     "toomanyconn", False),
    ("iCloud 'inactive email address' means no such address",
     fail("550 5.1.1 <neko@icloud.com>: inactive email address (in reply to RCPT TO command)", "5.1.1", "550",
          rcpt="neko@icloud.com"), "userunknown", True),
    ("iCloud excessive volume is speeding", fail("421 4.7.1 Messages to neko@icloud.com deferred due to excessive "
                                                 "volume.", "4.7.1", "421", rcpt="neko@icloud.com"), "speeding", False),
    ("i.ua error code 4 is a full mailbox", fail("550 Mailbox is full, see https://mail.i.ua/err/4", None, "550",
                                                 rcpt="neko@i.ua"), "mailboxfull", False),
    ("Gmail inactive account is suspended, not unknown",
     fail("550-5.2.1 The email account that you tried to reach is inactive. - gsmtp", "5.2.1", "550", "RCPT",
          mta="gmail-smtp-in.l.google.com"), "suspend", False),
    ("Gmail PTR requirement", fail("421-4.7.0 The IP address sending this message does not have a PTR record, or the "
                                   "corresponding forward DNS entry does not point to the sending IP. - gsmtp", "4.7.0",
                                   "421", mta="gmail-smtp-in.l.google.com"), "requireptr", False),
    ("Tencent 'mailbox unavailable or access denied' is their rate limit, not a dead address",
     fail("550 Mailbox unavailable or access denined [MXXXX]", "5.0.0", "550", "RCPT", rcpt="neko@qq.com"),
     "speeding", False),
    ("Yahoo TSS04 deferral is the sender's reputation",
     fail("421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user "
          "complaints", "4.7.0", "421", "MAIL", mta="mta5.am0.yahoodns.net"), "badreputation", False),
]


@pytest.mark.parametrize(("failure", "reason", "hard"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify_gives_the_expected_reason_and_hardness(failure: Failure, reason: str, hard: bool) -> None:
    """Each hand-written failure gets the reason and hardness a careful reader would give it."""
    v = classify(failure)
    assert (v.reason, v.hard) == (reason, hard), v


def test_every_verdict_carries_a_rule_id_and_evidence_from_the_text() -> None:
    """The rule id goes into the DNC trail; text-rule evidence is a piece of the diagnostic itself."""
    v = classify(fail("550 5.1.1 <kijitora@example.jp>... User unknown", "5.1.1", "550", "RCPT"))
    assert v.rule.startswith("text.userunknown")
    assert v.evidence and v.evidence in normalize("550 5.1.1 <kijitora@example.jp>... User unknown")


@pytest.mark.parametrize("kind", [Kind.FEEDBACK, Kind.VACATION, Kind.DELIVERED])
def test_non_bounces_are_never_hard(kind: Kind) -> None:
    """Complaints, auto-replies and delivery notices keep their own reason and are never hard."""
    v = classify(fail("550 5.1.1 User unknown", "5.1.1", "550", "RCPT"), kind)
    assert v.reason == str(kind) and not v.hard


def test_a_mailer_hint_yields_to_the_programs_own_words_about_the_mailbox() -> None:
    """An X-Unix report saying "Disk quota exceeded" is a full mailbox, still soft; other words keep the hint."""
    quota = Failure(recipient=RCPT, status="4.3.0", diagnostic="/var/mail/neko/Maildir/tmp/x: Disk quota exceeded",
                    reason_hint="mailererror", hint_rule="dsn.x-unix-diagnostic")
    assert (classify(quota).reason, classify(quota).hard) == ("mailboxfull", False)
    odd = dataclasses.replace(quota, diagnostic="No such user")
    assert (classify(odd).reason, classify(odd).hard) == ("mailererror", False)


def test_a_dead_address_hint_on_a_mail_from_refusal_stays_soft() -> None:
    """Even a detector's "userunknown" cannot make a refusal of MAIL FROM hard: it was about the sender."""
    f = Failure(recipient=RCPT, status="5.1.1", reply_code="550", diagnostic="550 5.1.1 User unknown", command="MAIL",
                reason_hint="userunknown", hint_rule="x.table")
    assert (classify(f).reason, classify(f).hard) == ("rejected", False)


def test_a_detector_hint_wins_and_keeps_its_rule() -> None:
    """A reason the format itself states is taken as is, with the detector's rule id."""
    f = Failure(recipient=RCPT, status="5.0.0", diagnostic="User unknown", reason_hint="expired",
                hint_rule="qmail.queue-lifetime", hint_evidence="in the queue too long")
    v = classify(f)
    assert (v.reason, v.hard, v.rule) == ("expired", False, "qmail.queue-lifetime")


@pytest.mark.parametrize(("text", "command"), [
    ("host mx.example.jp[192.0.2.1] said: 550 5.1.1 unknown (in reply to RCPT TO command)", "RCPT"),
    ("host mx.example.jp said: 550 spam (in reply to end of DATA command)", "DATA"),
    ("SMTP error from remote mail server after MAIL FROM:<a@b.example> SIZE=1: 550 no", "MAIL"),
    ("SMTP error from remote mail server after initial connection: 554 go away", "CONN"),
    ("Connected to 192.0.2.1 but sender was rejected.", "MAIL"),
    ("192.0.2.1 does not like recipient. Remote host said: 550 5.1.1 unknown", "RCPT"),
    ("192.0.2.1 failed after I sent the message. Remote host said: 554 rejected", "DATA"),
    ("Google tried to deliver your message, but it was rejected by the recipient domain. 550 550 Unknown user "
     "a@b.example (state 18).", "DATA"),
    ("Google tried to deliver your message, but it was rejected by the recipient domain. 550 550 5.1.1 "
     "<a@b.example>... User Unknown (state 14).", "RCPT"),
    ("550 user unknown", None),
])
def test_infer_command_reads_the_mta_wording(text: str, command: str | None) -> None:
    """Postfix, Exim and qmail each say which command failed in their own words."""
    assert infer_command(normalize(text)) == command


SAMPLE_WORDS = sorted({w for r in TEXT_RULES for a in r.anchors for w in (a.strip(), *a.split())} - {""} | {
    "550", "5.1.1", "user", "the", "<kijitora@example.jp>", "mail", "from", "to", "is", "not", "rejected", "192.0.2.1",
})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(SAMPLE_WORDS), min_size=1, max_size=12))
def test_anchors_never_change_what_a_rule_matches(words: list[str]) -> None:
    """Skipping a scan when no anchor occurs is only an optimisation: the answer is the full pattern's."""
    text = normalize(" ".join(words))
    for r in TEXT_RULES:
        assert (r.search(text) is None) == (r.pattern.search(text) is None), (r.id, text)


def test_normalize_drops_reply_codes_of_continuation_lines() -> None:
    """Unfolded multi-line replies keep their phrases whole (RFC 5321 §4.2.1 continuation lines)."""
    assert normalize("550-5.7.1 Messages with multiple\n550 5.7.1 addresses in From: header") == (
        "550-5.7.1 messages with multiple addresses in from: header"
    )


@pytest.mark.parametrize(("status", "reason"), [
    ("5.1.1", "userunknown"), ("4.1.1", None), ("5.2.2", "mailboxfull"), ("4.2.2", "mailboxfull"),
    ("5.7.1", "securityerror"), ("4.7.1", "blocked"), ("5.7.0", "securityerror"), ("5.6.9", "contenterror"),
    ("5.0.0", None), ("5.3.0", "systemerror"), ("4.3.0", None), ("5.7.26", "authfailure"), ("bogus", None),
])
def test_status_map_follows_rfc3463_with_class_specific_details(status: str, reason: str | None) -> None:
    """Exact codes win, then class-independent details, then the subject; temporary 4.1.1 maps to nothing."""
    r = reason_for_status(status)
    assert (r.reason if r else None) == reason


def test_every_rule_and_provider_rule_is_well_formed() -> None:
    """Ids are unique across all registries, reasons are in the vocabulary, providers are declared."""
    ids = [r.id for r in TEXT_RULES] + [r.id for r in STATUS_RULES] + [r.id for r in PROVIDER_RULES]
    assert len(ids) == len(set(ids))
    vocabulary = {str(r) for r in Reason}
    names = {p.name for p in PROVIDERS}
    for r in (*TEXT_RULES, *STATUS_RULES, *PROVIDER_RULES):
        assert r.reason in vocabulary, r
    for pr in PROVIDER_RULES:
        assert pr.provider in names, pr
        assert isinstance(pr.pattern, re.Pattern)


def test_hard_reasons_come_only_from_rules_that_skip_mail_from() -> None:
    """Text rules that can make a bounce hard never apply to a reply to MAIL FROM or the greeting."""
    for r in TEXT_RULES:
        if r.reason in ("userunknown", "hostunknown", "hasmoved", "notaccept"):
            assert {"MAIL", "CONN", "HELO"} <= r.skip_at, r.id


@settings(max_examples=200, deadline=None)
@given(
    diag=st.text(max_size=400),
    status=st.one_of(st.none(), st.from_regex(r"[2-5]\.\d{1,3}\.\d{1,3}", fullmatch=True), st.text(max_size=8)),
    reply=st.one_of(st.none(), st.from_regex(r"[2-5]\d\d", fullmatch=True), st.text(max_size=4)),
    command=st.one_of(st.none(), st.sampled_from(["RCPT", "MAIL", "DATA", "HELO", "EHLO", "CONN", "BDAT", "xyz"])),
    action=st.one_of(st.none(), st.sampled_from(["failed", "delayed", "delivered", "relayed", "expanded"])),
)
def test_classify_never_raises_and_always_names_a_known_reason(
    diag: str, status: str | None, reply: str | None, command: str | None, action: str | None
) -> None:
    """Whatever a detector hands over, classify answers with a vocabulary reason and a rule id."""
    v = classify(Failure(recipient=RCPT, action=action, status=status, reply_code=reply, diagnostic=diag,
                         command=command))
    assert v.reason in {str(r) for r in Reason} and v.rule
    assert not (v.hard and v.reason not in ("userunknown", "hostunknown", "hasmoved", "notaccept"))
    assert not (v.hard and ((status or "").startswith("4") or (reply or "").startswith("4") or action == "delayed"))


def test_a_huge_diagnostic_is_classified_from_its_head_quickly() -> None:
    """Quoted mail pasted into a diagnostic does not slow classification down or change the verdict."""
    f = fail("550 5.1.1 <kijitora@example.jp>... User unknown " + "x" * 2_000_000, "5.1.1", "550", "RCPT")
    assert classify(f).reason == "userunknown"


@pytest.mark.parametrize(("mta", "rcpt", "text", "names"), [
    ("smtp-in.orange.fr", "a@example.org", "", ("franceptt",)),
    (None, "a@wanadoo.fr", "", ("franceptt",)),
    (None, "a@sub.docomo.ne.jp", "", ("nttdocomo",)),
    (None, "a@notdocomo.ne.jp", "", ()),
    (None, "a@example.org", "550 5.4.1 access denied [am0pr01.prod.protection.outlook.com]", ("microsoft",)),
    ("mta5.am0.yahoodns.net", "a@example.org", "", ("yahoo",)),
    (None, "a@example.org", "550 no such user", ()),
])
def test_providers_are_recognised_by_host_quoted_host_or_recipient_domain(
    mta: str | None, rcpt: str, text: str, names: tuple[str, ...]
) -> None:
    """A provider is known by the remote MTA, a host named in its reply, or the recipient's domain (not a lookalike)."""
    assert providers_for(mta, rcpt, text) == names
