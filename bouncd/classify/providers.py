"""Provider (remote host) rules as data: some large mailbox providers word failures their own way.

A provider is recognised by the remote MTA's host name, by a host name quoted in the diagnostic, or by
the recipient's domain. Its rules run before the generic text rules because the provider's own error
codes (Orange ``OFR_416``, Cox ``AUP#CXBL``, GoDaddy ``IB108`` ...) name the cause more precisely than
the words around them. Codes and wording follow each provider's published error-code pages (linked per
provider) and Sisimai's ``Rhost`` modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider and how to recognise it: host-name suffixes (remote MTA or quoted) and recipient domains."""

    name: str
    hosts: tuple[str, ...]
    domains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProviderRule:
    """One provider rule: when ``provider`` is recognised and ``pattern`` matches, ``reason`` decides.

    ``status``: the rule applies only when the failure's status starts with it. ``commands``: only when the
    SMTP command is one of these.
    """

    id: str
    provider: str
    reason: str
    pattern: re.Pattern[str]
    status: str | None = None
    commands: frozenset[str] = frozenset()


PROVIDERS: tuple[Provider, ...] = (
    Provider("franceptt", (".orange.fr", ".wanadoo.fr", ".laposte.net"), ("orange.fr", "wanadoo.fr", "laposte.net")),
    Provider("nttdocomo", ("mfsmax.docomo.ne.jp",), ("docomo.ne.jp",)),
    Provider("kddi", (".ezweb.ne.jp", "msmx.au.com"), ("ezweb.ne.jp", "au.com")),
    Provider("cox", ("cox.net",), ("cox.net",)),
    Provider("spectrum", ("charter.net", "spectrum.net"), ("charter.net", "spectrum.net")),
    Provider("tencent", (".qq.com",), ("qq.com", "foxmail.com")),
    Provider("godaddy", (".secureserver.net",), ()),
    Provider("microsoft", (".protection.outlook.com", ".prod.outlook.com"), ()),
    Provider("mimecast", (".mimecast.com",), ()),
    Provider("yahoo", (".yahoodns.net",), ("yahoo.com", "yahoo.co.jp", "aol.com", "ymail.com")),
    Provider("apple", (".mail.icloud.com", ".apple.com", ".me.com"), ("icloud.com", "me.com", "mac.com")),
    Provider("iua", (".email.ua", ".i.ua/err/"), ("i.ua", "email.ua")),
    Provider("google", ("aspmx.l.google.com", "gmail-smtp-in.l.google.com", "- gsmtp", "support.google.com/mail"),
             ("gmail.com", "googlemail.com")),
)


def _p(*phrases: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in phrases))


def _codes(provider: str, prefix: str, code_re: str, table: dict[str, str]) -> tuple[ProviderRule, ...]:
    """Rules for a provider's numbered error codes, one rule (and id) per code."""
    return tuple(
        ProviderRule(
            f"provider.{provider}.{prefix}{code.lower()}", provider, reason, re.compile(code_re.format(re.escape(code.lower())))
        )
        for code, reason in table.items()
    )


# Orange / La Poste: "... OFR_416 [416]", "LPN007_420", "ofr_506" (the last three digits name the cause).
_FRANCEPTT = {
    "101": "blocked", "102": "blocked", "103": "blocked", "104": "toomanyconn", "305": "securityerror",
    "401": "authfailure", "402": "securityerror", "403": "rejected", "405": "rejected", "415": "rejected",
    "416": "userunknown", "417": "mailboxfull", "418": "userunknown", "420": "suspend", "421": "rejected",
    "426": "suspend", "505": "systemerror", "506": "spamdetected", "510": "blocked", "514": "mesgtoobig",
    "517": "authfailure", "630": "policyviolation", "999": "blocked",
}

# Cox: https://www.cox.com/residential/support/email-error-codes.html ("AUP#CXBL").
_COX = {
    "CXBL": "blocked", "CDRBL": "blocked", "CXDNS": "requireptr", "CXSNDR": "authfailure", "CXSMTP": "rejected",
    "CXCNCT": "toomanyconn", "CXMXRT": "toomanyconn", "CXTHRT": "securityerror", "CXMJ": "securityerror",
    "IPBL": "blocked", "URLBL": "spamdetected",
}

# GoDaddy: https://www.godaddy.com/help/what-does-my-email-bounceback-mean-3568 ("IB108").
_GODADDY = {
    "IB401": "securityerror", "IB501": "notcompliantrfc", "IB502": "notcompliantrfc", "IB506": "rejected",
    "IB508": "authfailure", "IB108": "requireptr", "IB212": "spamdetected", "IB705": "virusdetected",
    "IB605": "toomanyconn", "IB007": "toomanyconn", "IB101": "speeding", "IB110": "blocked", "IB111": "blocked",
    "IB112": "blocked", "IB113": "blocked", "IB504": "speeding", "IB510": "speeding", "IB607": "speeding",
    "IB103": "badreputation", "IB104": "blocked", "IB105": "blocked", "IB106": "blocked",
}


def _spectrum() -> tuple[ProviderRule, ...]:
    """Spectrum/Charter "AUP#In-1310": four-digit ranges, see spectrum.net understanding-email-error-codes."""
    ranges = (
        ("1000", "1000", "blocked"), ("1010", "1010", "rejected"), ("1020", "1080", "rejected"),
        ("1090", "1090", "systemerror"), ("1100", "1150", "requireptr"), ("1160", "1190", "policyviolation"),
        ("1200", "1250", "blocked"), ("1260", "1260", "networkerror"), ("1300", "1340", "toomanyconn"),
        ("1350", "1490", "speeding"), ("1500", "1520", "rejected"), ("1530", "1530", "mesgtoobig"),
        ("1540", "1550", "speeding"), ("1560", "1560", "policyviolation"), ("1580", "1580", "speeding"),
    )
    out = []
    for lo, hi, reason in ranges:
        codes = "|".join(str(n) for n in range(int(lo), int(hi) + 1))
        out.append(ProviderRule(f"provider.spectrum.aup{lo}", "spectrum", reason, re.compile(rf"aup#[a-z-]*(?:{codes})\b")))
    return tuple(out)


PROVIDER_RULES: tuple[ProviderRule, ...] = (
    *_codes("franceptt", "code", r"\b(?:lpn|lpnaaa|ofr|ouk)(?:\d{{3}})?[-_]{0}\b", _FRANCEPTT),
    # NTT docomo answers "550 Unknown user" after DATA when the recipient's filter refuses the sender.
    ProviderRule("provider.nttdocomo.filtered-520", "nttdocomo", "filtered", _p(r"unknown user|user unknown"), status="5.2.0"),
    ProviderRule("provider.nttdocomo.rejected-at-data", "nttdocomo", "rejected", _p(r"unknown user|user unknown"),
                 commands=frozenset({"DATA"})),
    ProviderRule("provider.nttdocomo.mailboxfull", "nttdocomo", "mailboxfull", _p(r"too much mail data")),
    ProviderRule("provider.nttdocomo.toomanyconn", "nttdocomo", "toomanyconn", _p(r"552 too many recipients")),
    # au (KDDI): "550 : User unknown" (no address) is the recipient's filter; "<addr>: User unknown" is real.
    ProviderRule("provider.kddi.filtered", "kddi", "filtered", _p(r"550 : user unknown")),
    ProviderRule("provider.kddi.userunknown", "kddi", "userunknown", _p(r">: user unknown")),
    *_codes("cox", "aup-", r"aup#{0}", _COX),
    ProviderRule("provider.cox.requireptr", "cox", "requireptr", _p(r"rejected - no rdns")),
    ProviderRule("provider.cox.toomanyconn", "cox", "toomanyconn", _p(r"too many sessions from", r"message threshold exceeded")),
    *_spectrum(),
    # Tencent QQ: https://service.mail.qq.com/detail/122
    ProviderRule("provider.tencent.toomanyconn", "tencent", "toomanyconn", _p(r"frequency limited")),
    ProviderRule("provider.tencent.authfailure", "tencent", "authfailure", _p(r"spf check failed", r"dmarc check failed")),
    ProviderRule("provider.tencent.blocked", "tencent", "blocked",
                 _p(r"suspected bounce attacks", r"suspected spam ip", r"connection denied")),
    ProviderRule("provider.tencent.suspend", "tencent", "suspend", _p(r"is a deactivated mailbox")),
    ProviderRule("provider.tencent.rejected", "tencent", "rejected",
                 _p(r"suspected spam(?! ip)", r"mail is rejected by recipients")),
    ProviderRule("provider.tencent.speeding", "tencent", "speeding", _p(r"mailbox unavailable or access deni?n?ed")),
    ProviderRule("provider.tencent.syntaxerror", "tencent", "syntaxerror", _p(r"bad address syntax")),
    ProviderRule("provider.tencent.userunknown", "tencent", "userunknown", _p(r"mailbox not found")),
    *_codes("godaddy", "", r"\b{0}\b", _GODADDY),
    ProviderRule("provider.godaddy.blocked-rbl", "godaddy", "blocked", _p(r"rbl reject", r"spamhaus\.org/query/bl")),
    # Exchange Online: 5.4.1 "Recipient address rejected: Access denied" is directory-based edge blocking,
    # i.e. the recipient does not exist in the tenant (learn.microsoft.com, NDR 5.4.1).
    ProviderRule("provider.microsoft.541-userunknown", "microsoft", "userunknown",
                 _p(r"recipient address rejected: access denied"), status="5.4.1"),
    ProviderRule("provider.microsoft.badreputation", "microsoft", "badreputation", _p(r"rate limited due to ip reputation")),
    # Exchange Online NDR reference (learn.microsoft.com "Non-delivery reports in Exchange Online").
    ProviderRule("provider.microsoft.speeding", "microsoft", "speeding",
                 _p(r"submission quota exceeded", r"recipient thread limit exceeded", r"daily limit for message recipients",
                    r"per hour message receive limit", r"tenant has exceeded threshold", r"traffic not accepted from this ip")),
    ProviderRule("provider.microsoft.authfailure", "microsoft", "authfailure",
                 _p(r"does not pass dmarc verification", r"must pass either spf or dkim")),
    ProviderRule("provider.microsoft.rejected", "microsoft", "rejected",
                 _p(r"spam abuse detected", r"sender not in allowed-senders list", r"sender not authenticated for group",
                    r"sender was not authenticated", r"blocked from sending from unregistered domains",
                    r"bad outbound sender")),
    ProviderRule("provider.microsoft.blocked", "microsoft", "blocked",
                 _p(r"access denied, bad helo", r"using customer block list", r"does not accept email over ipv6",
                    r"access denied, rejected by recipient")),
    ProviderRule("provider.microsoft.policyviolation", "microsoft", "policyviolation",
                 _p(r"x-dg-ref header is too long", r"policy violation detected \(as345\)")),
    ProviderRule("provider.microsoft.blocked-banned", "microsoft", "blocked",
                 _p(r"banned sending ip", r"part of their network is on our block list")),
    # Mimecast: community.mimecast.com "Mimecast SMTP Error Codes".
    ProviderRule("provider.mimecast.policyviolation", "mimecast", "policyviolation",
                 _p(r"host network,? not allowed", r"anti-spoofing policy", r"content examination policy")),
    ProviderRule("provider.mimecast.rejected", "mimecast", "rejected",
                 _p(r"envelope blocked", r"blocked senders", r"administrative prohibition")),
    # Yahoo: https://senders.yahooinc.com/smtp-error-codes
    ProviderRule("provider.yahoo.userunknown", "yahoo", "userunknown", _p(r"dd this user doesn't have a \S+ account")),
    ProviderRule("provider.yahoo.suspend", "yahoo", "suspend", _p(r" is no longer valid\.", r"this mailbox is disabled")),
    ProviderRule("provider.yahoo.rejected", "yahoo", "rejected", _p(r"will be permanently deferred")),
    # Apple iCloud: https://support.apple.com/en-us/102322
    ProviderRule("provider.apple.authfailure", "apple", "authfailure",
                 _p(r"'s dmarc policy", r"failing both spf and dkim")),
    ProviderRule("provider.apple.blocked", "apple", "blocked",
                 _p(r"rejected due to (?:having a domain present in the spamhaus|listing in spamhaus)",
                    r"blocked - see https://support\.proofpoint\.com", r"not accepting connections")),
    ProviderRule("provider.apple.hasmoved", "apple", "hasmoved", _p(r"recipient no longer on server")),
    ProviderRule("provider.apple.mailboxfull", "apple", "mailboxfull", _p(r"user is over quota")),
    ProviderRule("provider.apple.policyviolation", "apple", "policyviolation", _p(r"due to local policy")),
    ProviderRule("provider.apple.rejected", "apple", "rejected", _p(r"sender address rejected")),
    ProviderRule("provider.apple.speeding", "apple", "speeding", _p(r"due to excessive volume")),
    # iCloud answers "inactive email address" for an address that does not exist.
    ProviderRule("provider.apple.userunknown", "apple", "userunknown",
                 _p(r"inactive email address", r"user does not exist", r"unknown or illegal alias")),
    # i.ua: "... https://mail.i.ua/err/2 ..." (the number names the cause).
    *_codes("iua", "err", r"\.i\.ua/err/{0}\b", {
        "1": "norelaying", "2": "userunknown", "3": "suspend", "4": "mailboxfull", "5": "toomanyconn",
        "6": "norelaying", "7": "blocked", "8": "rejected", "9": "blocked", "10": "filtered",
    }),
    # Gmail / Google Workspace: https://support.google.com/a/answer/3726730 (SMTP error reference).
    ProviderRule("provider.google.authfailure", "google", "authfailure",
                 _p(r"spf record of the sending domain has one or more suspicious entries", r"fails to pass spf checks",
                    r"spf record with a hard fail policy", r"fails to pass authentication checks",
                    r"requires all (?:large |bulk email )?senders to authenticate")),
    ProviderRule("provider.google.blocked", "google", "blocked",
                 _p(r"ip not in whitelist for rcpt domain", r"try again later, closing connection",
                    r"helo/ehlo argument (?:is invalid|not allowed)", r"unusual rate of unsolicited mail")),
    ProviderRule("provider.google.exceedlimit", "google", "exceedlimit",
                 _p(r"exceeds google's limit of \S+ attachments", r"header size limits?", r"bytes per individual header size",
                    r"exceeds google's header name limit")),
    ProviderRule("provider.google.mesgtoobig", "google", "mesgtoobig", _p(r"google's message size limit")),
    ProviderRule("provider.google.expired", "google", "expired", _p(r"connection expired", r"timeout - closing connection")),
    ProviderRule("provider.google.mailboxfull", "google", "mailboxfull",
                 _p(r"inbox is out of storage space", r"tried to reach is over quota", r"email quota exceeded")),
    ProviderRule("provider.google.networkerror", "google", "networkerror", _p(r"exceeded 50 hops")),
    ProviderRule("provider.google.norelaying", "google", "norelaying",
                 _p(r"mail relay denied", r"invalid credentials for relay", r"not authorized to send email directly")),
    ProviderRule("provider.google.notcompliantrfc", "google", "notcompliantrfc",
                 _p(r"missing a valid (?:address in the from: header|message-id)", r"multiple addresses in from: header",
                    r"unicode character in a disallowed header", r"encoded-word syntax is not permitted",
                    r"mail message is malformed")),
    ProviderRule("provider.google.policyviolation", "google", "policyviolation",
                 _p(r"illegal attachment", r"content presents a potential security issue", r"has a policy that prohibited",
                    r"same message-id")),
    ProviderRule("provider.google.rejected", "google", "rejected",
                 _p(r"mail sending denied", r"unauthenticated email is not accepted from this domain")),
    ProviderRule("provider.google.requireptr", "google", "requireptr",
                 _p(r"regarding ptr records", r"does not have a ptr record", r"have a ptr record, or the ptr record",
                    r"sending ip does not match the ip address of the hostname")),
    ProviderRule("provider.google.securityerror", "google", "securityerror",
                 _p(r"tls required for rcpt domain", r"too many login attempts", r"no identity changes permitted",
                    r"application-specific password required", r"log in (?:with|through) your web browser",
                    r"username and password not accepted", r"senders to use tls")),
    ProviderRule("provider.google.spamdetected", "google", "spamdetected",
                 _p(r"nature of the content or the links", r"likely unsolicited mail")),
    ProviderRule("provider.google.speeding", "google", "speeding",
                 _p(r"receiving mail (?:too quickly|at a rate)", r"peak smtp relay limit",
                    r"daily (?:sending quota|user sending limit|smtp relay (?:sending )?limit) exceeded",
                    r"this mail has been rate limited")),
    ProviderRule("provider.google.suspend", "google", "suspend",
                 _p(r"account that you tried to reach is (?:disabled|inactive)")),
    ProviderRule("provider.google.systemerror", "google", "systemerror",
                 _p(r"temporary system problem", r"server busy", r"multiple destination domains per transaction",
                    r"temporarily rejected (?:this )?message", r"domain policy size per transaction")),
    ProviderRule("provider.google.syntaxerror", "google", "syntaxerror",
                 _p(r"smtp protocol violation", r"optional argument not permitted", r"starttls may not be repeated",
                    r"unrecognized command", r"unimplemented command", r"bad sequence of commands", r"ehlo/helo first",
                    r"no data after bdat", r"unrecognized authentication type", r"must issue a starttls command first",
                    r"too many unauthenticated commands")),
    ProviderRule("provider.google.toomanyconn", "google", "toomanyconn", _p(r"too many recipients")),
    # [TSS04] "temporarily deferred due to unexpected volume or user complaints": the sending IP's standing.
    ProviderRule("provider.yahoo.tss04", "yahoo", "badreputation", _p(r"unexpected volume or user complaints")),
)


def providers_for(remote_mta: str | None, recipient: str | None, text: str) -> tuple[str, ...]:
    """Names of the providers a failure came from: by remote MTA, a host named in the text, or the domain."""
    where = f"{(remote_mta or '').lower()} {text}"
    domain = (recipient or "").rpartition("@")[2].lower()
    parents = {domain.split(".", i)[-1] for i in range(domain.count(".") + 1)} if domain else set()
    return tuple(
        p.name for p in PROVIDERS if any(map(where.__contains__, p.hosts)) or not parents.isdisjoint(p.domains)
    )


def match_provider(names: tuple[str, ...], text: str, status: str | None, command: str | None) -> tuple[ProviderRule, str] | None:
    """The first provider rule of ``names`` matching the failure, and the text it matched."""
    if not names:
        return None
    for r in PROVIDER_RULES:
        if r.provider not in names:
            continue
        if r.status and not (status or "").startswith(r.status):
            continue
        if r.commands and command not in r.commands:
            continue
        m = r.pattern.search(text)
        if m:
            return r, m.group(0)
    return None
