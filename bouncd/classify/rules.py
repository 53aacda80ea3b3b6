"""Reason rules as data: an ordered list of (id, reason, pattern) matched against the server's own words.

Order matters: the first rule whose pattern matches decides. More specific wording comes first
(``mailbox full`` before ``mailbox``; a sender-side block before a recipient-side rejection). Patterns
describe how servers phrase a failure, not the text of one sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TextRule:
    """One reason rule: the first match of ``pattern`` in the diagnostic decides ``reason``."""

    id: str
    reason: str
    pattern: re.Pattern[str]


def rule(rule_id: str, reason: str, *phrases: str) -> TextRule:
    """Build a rule from regex alternatives (case-insensitive)."""
    return TextRule(rule_id, reason, re.compile("|".join(f"(?:{p})" for p in phrases), re.I))


TEXT_RULES: tuple[TextRule, ...] = (
    rule("text.mailboxfull", "mailboxfull",
         r"mailbox (?:is )?full", r"mailbox (?:size limit|quota)", r"over ?quota", r"quota (?:exceeded|exceeds)",
         r"exceed(?:ed|s)? (?:the |his |her |its )?(?:storage|quota|mailbox)", r"full mailbox",
         r"insufficient (?:disk )?(?:space|storage) for (?:the )?(?:user|mailbox)", r"user(?:'s)? (?:mailbox|account) is full",
         r"not enough (?:storage|space) (?:in|on) (?:the )?mailbox", r"mailbox has exceeded", r"disk quota"),
    rule("text.virusdetected", "virusdetected", r"\bvirus", r"malware", r"infected"),
    rule("text.requireptr", "requireptr",
         r"reverse (?:dns|lookup)", r"\bptr\b", r"\brdns\b", r"cannot find your (?:reverse )?hostname",
         r"no (?:reverse|rdns)"),
    rule("text.authfailure", "authfailure",
         r"\bspf\b", r"\bdkim\b", r"\bdmarc\b", r"sender policy framework", r"not authenticated",
         r"authentication (?:check )?failed"),
    rule("text.norelaying", "norelaying",
         r"relay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed))", r"not (?:permitted|allowed) to relay",
         r"unable to relay", r"we do not relay", r"no relaying", r"relaying mail to .* is not allowed"),
    rule("text.securityerror", "securityerror",
         r"starttls", r"\btls\b.*required", r"must issue a starttls", r"authentication required",
         r"certificate"),
    rule("text.spamdetected", "spamdetected",
         r"\bspam", r"junk mail", r"\buce\b", r"bulk (?:e-?)?mail"),
    rule("text.badreputation", "badreputation", r"reputation"),
    rule("text.blocked", "blocked",
         r"blacklist", r"blocklist", r"block ?list(?:ed)?", r"listed (?:in|on|at)", r"spamhaus", r"\brbl\b",
         r"dnsbl", r"client host (?:\[.*?\] )?(?:rejected|blocked)", r"your (?:ip|host|server)",
         r"connection (?:refused|rejected)", r"access denied", r"\bbanned"),
    rule("text.toomanyconn", "toomanyconn", r"too many (?:connections|recipients|simultaneous)"),
    rule("text.speeding", "speeding", r"rate limit", r"too many messages", r"throttl", r"sending rate"),
    rule("text.hasmoved", "hasmoved", r"has moved", r"no longer (?:at|with|valid)", r"address (?:has )?changed"),
    rule("text.suspend", "suspend",
         r"(?:account|mailbox|user) (?:has been |is )?(?:disabled|suspended|deactivated|inactive|locked|frozen)",
         r"suspended", r"not (?:an )?active"),
    rule("text.userunknown", "userunknown",
         r"user ?unknown", r"unknown (?:user|recipient|mailbox|local[- ]part)", r"no such (?:user|mailbox|recipient|address)",
         r"(?:mailbox|recipient|user|address|account) (?:not found|does not exist|doesn't exist|unavailable)",
         r"invalid (?:recipient|mailbox|address|user)", r"(?:recipient|addressee) unknown",
         r"does not exist", r"unrouteable address", r"bad destination mailbox", r"not a valid (?:mailbox|user)",
         r"no mailbox", r"not our customer", r"unknown address"),
    rule("text.hostunknown", "hostunknown",
         r"host (?:unknown|not found)", r"unknown host", r"domain (?:not found|does not exist|unknown)",
         r"no such domain", r"name or service not known", r"unrouteable mail domain",
         r"host or domain name not found", r"no (?:mx|mail exchanger|valid mx)"),
    rule("text.notaccept", "notaccept", r"does not accept (?:e-?)?mail", r"null mx", r"not accepting (?:e-?)?mail"),
    rule("text.expired", "expired",
         r"retry time(?:out)? (?:exceeded|not reached)", r"message expired", r"delivery time expired",
         r"too long in (?:the )?queue", r"could not be delivered (?:within|for)", r"giving up", r"time(?:d)? ?out"),
    rule("text.mesgtoobig", "mesgtoobig",
         r"message (?:is )?too (?:large|big)", r"message size exceeds", r"size limit", r"exceeds? (?:the )?(?:maximum )?size"),
    rule("text.mailererror", "mailererror", r"mailer error", r"command died", r"pipe to \|", r"x-unix;", r"exit code"),
    rule("text.networkerror", "networkerror",
         r"network is unreachable", r"loops? back to myself", r"(?:mail|routing) loop", r"too many hops",
         r"loop detected", r"dns (?:lookup )?fail"),
    rule("text.policyviolation", "policyviolation", r"polic(?:y|ies)", r"prohibited"),
    rule("text.rejected", "rejected",
         r"sender (?:address )?(?:rejected|denied|refused|verify failed)", r"domain of sender", r"invalid sender",
         r"sender (?:is )?(?:not allowed|blocked)"),
    rule("text.filtered", "filtered", r"refused by (?:the )?recipient", r"rejected by (?:the )?recipient",
         r"delivery not authorized", r"has blocked"),
    rule("text.systemerror", "systemerror",
         r"system error", r"internal (?:server )?error", r"configuration error", r"i/o error",
         r"local error in processing", r"temporary local problem"),
    rule("text.systemfull", "systemfull", r"system (?:is )?full", r"insufficient system storage"),
    rule("text.notcompliantrfc", "notcompliantrfc", r"rfc ?5322", r"rfc ?2822", r"duplicate header"),
    rule("text.contenterror", "contenterror", r"header error", r"invalid header", r"content rejected"),
    rule("text.syntaxerror", "syntaxerror", r"syntax error", r"command unrecognized", r"bad sequence of commands"),
)


def match_text(text: str) -> tuple[TextRule, str] | None:
    """The first rule matching ``text`` and the text it matched."""
    for r in TEXT_RULES:
        m = r.pattern.search(text)
        if m:
            return r, m.group(0)
    return None
