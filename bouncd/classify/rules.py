"""Reason rules as data: an ordered list of (id, reason, pattern, gates) matched against the server's words.

Order matters: the first rule whose pattern matches (and whose gates allow the SMTP command the failure
answered) decides. The order follows how specific a wording is, not the reason's severity:

0. a reporting MTA's own classification codes (``text.code.*``: PowerMTA ``X-PowerMTA-BounceCategory``,
   Exchange ``RESOLVER.ADR.RecipNotFound`` and MSEXCH NDR codes), matched before even a decisive
   status code (see :func:`match_code`);
1. a local delivery program's failure, then the recipient's mailbox state (full, too big, suspended,
   moved) - a server that says "full" means it, and a sending quota ("throttling failure") is not one;
2. relaying and sender authentication (SPF/DKIM/DMARC, PTR), which name the *sender* side, then null MX
   and temporary DNS failures (a lookup that failed is not a domain that does not exist);
3. the address itself (unknown domain, unknown user) - only these can make a bounce hard, so their
   phrases are precise and they never apply to a reply to ``MAIL FROM`` or the greeting (there the
   words describe the sender, see ``DEAD_ADDRESS_SKIP``); "no such user" words are placed afterwards
   by the SMTP command and status (see ``bouncd.classify``);
4. recipient filters, policy, sender rejection, a named cause before the queue's give-up, reputation,
   viruses, spam sources and spam, rate limits and IP blocks - and when one of these is named in the
   same reply as a dead-address phrase, it wins (see ``OTHER_CAUSES``);
5. generic security, network, queue, content, system and protocol trouble.

Patterns describe how servers phrase a failure (Postfix, Exim, Sendmail, qmail, Exchange, Gmail, Yahoo,
...), in the spirit of Sisimai's reason phrase lists, never the text of one sample. Texts are matched
lower-cased with white space squeezed (see :func:`normalize`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# SMTP stages a failure can answer (RFC 5321 §4.1.1): the greeting, HELO/EHLO, MAIL, RCPT, DATA.
CONN = "CONN"
HELO = "HELO"
MAIL = "MAIL"
RCPT = "RCPT"
DATA = "DATA"

BEFORE_RCPT = frozenset({CONN, HELO, MAIL})
GREETING = frozenset({CONN, HELO})
# A reply to MAIL FROM or the greeting can never be about the recipient's address.
DEAD_ADDRESS_SKIP = BEFORE_RCPT


@dataclass(frozen=True, slots=True)
class TextRule:
    """One reason rule: the first match of ``pattern`` decides ``reason`` unless the command is in ``skip_at``."""

    id: str
    reason: str
    pattern: re.Pattern[str]
    skip_at: frozenset[str] = frozenset()
    # Plain substrings one of which must occur for the pattern to match (empty: always try the pattern).
    # A substring test costs a fraction of a regex scan, and most rules do not match most texts.
    anchors: tuple[str, ...] = ()

    def search(self, text: str) -> re.Match[str] | None:
        """The first match of the pattern in ``text``, skipping the scan when no anchor occurs."""
        if self.anchors and not any(map(text.__contains__, self.anchors)):
            return None
        return self.pattern.search(text)


_META = set(".^$*+?{}[]|()\\")
_BREAKING_ESCAPES = set("bBdDsSwWAZ")


def required_literal(alternative: str) -> str | None:
    """The longest plain run of characters every match of ``alternative`` must contain, if it has one.

    Reads only the top level of the pattern: groups, classes, escapes like ``\\b`` and optional or
    repeated characters end a run; a top-level ``|`` means no single literal is required.
    """
    runs: list[str] = []
    cur: list[str] = []
    i, n, depth = 0, len(alternative), 0
    while i < n:
        c = alternative[i]
        if depth:
            if c == "\\":
                i += 2
                continue
            depth += c == "("
            depth -= c == ")"
            i += 1
            continue
        if c == "(":
            depth = 1
            runs.append("".join(cur))
            cur = []
            i += 1
            continue
        if c == "|":
            return None
        if c == "[":
            j = alternative.index("]", i + 2) if "]" in alternative[i + 2:] else n
            runs.append("".join(cur))
            cur = []
            i = j + 1
            continue
        if c == "\\" and i + 1 < n:
            e = alternative[i + 1]
            if e in _BREAKING_ESCAPES:
                runs.append("".join(cur))
                cur = []
                i += 2
                continue
            c, step = e, 2
        elif c in _META:
            runs.append("".join(cur))
            cur = []
            i = alternative.find("}", i) + 1 if c == "{" and "}" in alternative[i:] else i + 1
            continue
        else:
            step = 1
        nxt = alternative[i + step] if i + step < n else ""
        if nxt in ("?", "*") or (nxt == "{" and alternative[i + step:].startswith("{0")):
            runs.append("".join(cur))
            cur = []
        else:
            cur.append(c)
            if nxt in ("+", "{"):
                runs.append("".join(cur))
                cur = []
        i += step
    runs.append("".join(cur))
    best = max(runs, key=len)
    return best if len(best) >= 3 else None


@dataclass(frozen=True, slots=True)
class Phrase:
    """A regex alternative whose required words cannot be read off its top level, stated by hand."""

    pattern: str
    anchors: tuple[str, ...]


def rule(rule_id: str, reason: str, *phrases: str | Phrase, skip_at: frozenset[str] = frozenset()) -> TextRule:
    """Build a rule from regex alternatives (matched against lower-cased, squeezed text)."""
    anchors: list[str] = []
    complete = True
    for p in phrases:
        if isinstance(p, Phrase):
            anchors.extend(p.anchors)
            continue
        lit = required_literal(p)
        complete = complete and lit is not None
        if lit:
            anchors.append(lit)
    patterns = [p.pattern if isinstance(p, Phrase) else p for p in phrases]
    return TextRule(rule_id, reason, re.compile("|".join(f"(?:{p})" for p in patterns)), skip_at,
                    tuple(dict.fromkeys(anchors)) if complete else ())


_WS = re.compile(r"\s+")
# Multi-line SMTP replies (RFC 5321 §4.2.1) repeat the code on every line ("550-5.7.1 ... 550 5.7.1 ...");
# once unfolded those codes land mid-sentence and split phrases, so drop any code between two words.
_CONTINUATION = re.compile(r"(?<=[a-z,;.)\]]) [245]\d\d[- ](?:[245]\.\d{1,3}\.\d{1,3} )?(?=[a-z(\[])")


# Postfix prefixes the cause with "delivery temporarily suspended:" when it has stopped trying a
# destination for a while (qmgr's dead-destination cache); the words are about the delivery, not a
# suspended mailbox, and the cause that follows the colon is what the rules must read.
_POSTFIX_SUSPENDED = re.compile(r"^delivery temporarily suspended:\s*")


def normalize(text: str) -> str:
    """Lower-case, squeeze white space and drop mid-sentence reply codes: the form patterns are written against."""
    return _POSTFIX_SUSPENDED.sub("", _CONTINUATION.sub(" ", _WS.sub(" ", text).strip().lower()))


# Words a server uses for "the recipient's mailbox" and "does not exist".
_BOX = (
    r"(?:user|mailbox|recipient|address|account|addressee|e-?mail address|email account|local[- ]?part"
    r"|destination address)"
)
_GONE = (
    r"(?:does ?n[o']t exist|not exist|doesn't exist|not found|unknown|unavailable|invalid|not valid|not known"
    r"|no longer exists?)"
)
# PowerMTA's X-PowerMTA-BounceCategory names the reason in its own words.
_PMTA = "bouncecategory: "

TEXT_RULES: tuple[TextRule, ...] = (
    # -- 0. a reporting MTA's own classification (matched before decisive status codes) ---------
    rule("text.code.pmta-bad-mailbox", "userunknown", _PMTA + "bad-mailbox", skip_at=DEAD_ADDRESS_SKIP),
    rule("text.code.pmta-bad-domain", "hostunknown", _PMTA + "bad-domain", skip_at=DEAD_ADDRESS_SKIP),
    rule("text.code.pmta-quota", "mailboxfull", _PMTA + "quota-issues"),
    rule("text.code.pmta-inactive", "suspend", _PMTA + "inactive-mailbox"),
    rule("text.code.pmta-spam", "spamdetected", _PMTA + "spam-related"),
    rule("text.code.pmta-virus", "virusdetected", _PMTA + "virus-related"),
    rule("text.code.pmta-policy", "policyviolation", _PMTA + "policy-related"),
    rule("text.code.pmta-content", "contenterror", _PMTA + "content-related"),
    rule("text.code.pmta-relaying", "norelaying", _PMTA + "relaying-issues"),
    rule("text.code.pmta-routing", "networkerror", _PMTA + "(?:routing-errors|bad-connection)"),
    rule("text.code.pmta-expired", "expired", _PMTA + "(?:message-expired|no-answer-from-host)"),
    # Exchange's own diagnostic codes (RESOLVER.ADR.RecipNotFound, QUEUE.Expired ...), as Microsoft documents
    # them for Exchange Server 2007 and later NDRs.
    rule("text.code.exchange-recipnotfound", "userunknown", r"resolver\.adr\.(?:ex)?recipnotfound",
         skip_at=DEAD_ADDRESS_SKIP),
    rule("text.code.exchange-nonexistentdomain", "hostunknown", r"smtpsend\.dns\.nonexistentdomain",
         skip_at=DEAD_ADDRESS_SKIP),
    rule("text.code.exchange-mxloopback", "networkerror", r"smtpsend\.dns\.mxloopback"),
    rule("text.code.exchange-reciplimit", "toomanyconn", r"resolver\.adr\.reciplimit"),
    # RecipSizeLimit is the recipient's own limit (RFC 3463 X.2.3), not the system's (X.3.4).
    rule("text.code.exchange-recipsizelimit", "exceedlimit", r"resolver\.rst\.recipsizelimit"),
    rule("text.code.exchange-authrequired", "securityerror", r"resolver\.rst\.authrequired"),
    rule("text.code.exchange-notauthorized", "rejected", r"resolver\.rst\.notauthorized"),
    rule("text.code.exchange-system", "systemerror",
         r"resolver\.adr\.(?:badprimary|invalidinsmtp|ambiguous)"),
    # Exchange 2000/2003 "MSEXCH:IMS:... 0 (000C05A6) Unknown Recipient": the NDR code in parentheses.
    rule("text.code.msexch-unknown-recipient", "userunknown", r"\(000c05a6\)", skip_at=DEAD_ADDRESS_SKIP),
    rule("text.code.msexch-ambiguous", "filtered", r"\(000c0595\)"),
    rule("text.code.msexch-system", "systemerror", r"\((?:00010256|000d06b5)\)"),
    rule("text.code.msexch-hops", "networkerror", r"\(00120270\)"),
    rule("text.code.msexch-conversion", "contenterror", r"\((?:00050311|000502cc)\)"),
    rule("text.code.msexch-auth", "securityerror", r"\(000b0981\)"),
    rule("text.code.exchange-expired", "expired", r"queue\.expired"),
    # -- 1. local delivery programs, then the recipient's mailbox --------------------------------
    # "Diagnostic-Code: X-Unix; 255": a bare number is a local delivery program's exit status.
    rule("text.mailererror-exit", "mailererror", r"^\d{1,3}$"),
    rule("text.mailererror", "mailererror",
         r"mailer error", r"command died", r"command failed:", r"command output", r"pipe to \|", r"x-unix;",
         r"\bprocmail", r"\bmaildrop", r"\|\| exit\b", r"exit (?:code|status) \d",
         r"bin/mail?drop"),
    # Per-sender or per-recipient receive limits (Exchange Online "submission quota", "per hour message
    # receive limit") are rate limits even when worded as a quota.
    rule("text.speeding-limits", "speeding",
         r"submission quota exceeded", r"daily limit for message recipients", r"per hour message receive limit",
         r"recipient thread limit exceeded", r"exceeded permitted limits within"),
    # Amazon SES style sending quotas are rate limits, not a full mailbox.
    rule("text.toomanyconn-throttling", "toomanyconn",
         r"throttling failure", r"daily message quota", r"maximum sending rate exceeded"),
    rule("text.mailboxfull", "mailboxfull",
         r"mailbox (?:is |was )?(?:full|over ?quota)", Phrase(r"mail ?box(?:es)? (?:size limit|quota)", ("size limit", "quota")),
         r"over ?(?:the )?(?:allowed )?quota", r"quota (?:exceeded|exceeds|violation|usage exceeded)",
         r"exceed(?:ed|s|ing)? (?:the |his |her |its |their )?(?:storage|quota|mailbox|disk)",
         r"full mailbox", r"mailbox would exceed",
         Phrase(r"(?:user|account|mail ?folder|inbox)(?:'s)? (?:mailbox )?is (?:full|over)", ("is full", "is over")),
         r"not enough (?:storage|space|disk)", r"insufficient (?:disk )?(?:space|storage) for (?:the )?(?:user|mailbox)",
         r"mailbox has exceeded", r"dis[ck] quota", r"diskspace quota",
         Phrase(r"user(?:disk|'s space)", ("userdisk", "user's space")), r"too much mail data",
         r"boite du destinataire pleine", r"recipient overquota", r"account storage limit", r"mailbox size limit",
         r"too many messages (?:on the server|in (?:this|the) mailbox)", r"storage allocation",
         r"does not have enough space", r"mail file size exceeds",
         r"exceeded the local limit", r"exceeding receiving limits",
         r"quota exceed",
         r"mailbox exceeds allowed size"),
    rule("text.exceedlimit-header", "exceedlimit", r"message header size exceeds limit"),
    rule("text.contenterror-header", "contenterror",
         r"header size exceeds maximum", r"header size, or recipient list", r"invalid mime headers"),
    rule("text.mesgtoobig", "mesgtoobig",
         r"message (?:is )?too (?:large|big)(?! for this recipient)", r"message size exceeds",
         r"(?:max|maximum) message size (?:exceeded|limit)", r"message file too big", r"exceeded maximum inbound message size",
         r"message length exceeds", r"size (?:of the message )?exceeds (?:the )?(?:fixed |maximum |allowed )",
         r"message exceeds (?:the )?(?:maximum|fixed|allowed)", r"taille limite du message", r"line limit exceeded",
         r"maximum email size exceeded", r"(?:message|mail) size limit",
         r"\bsize limit",
         r"databytes limit"),
    rule("text.exceedlimit", "exceedlimit",
         r"message too large for this recipient", r"message header size exceeds limit", r"recipsizelimit",
         r"maximum size the user accepts"),
    rule("text.suspend", "suspend",
         Phrase(r"(?:account|mailbox|user|recipient|address) (?:has been |is |was )?(?:currently |temporarily )?"
                r"(?:disabled|suspended|deactivated|inactive|frozen|locked|expired|terminated|archived)",
                ("disabled", "suspended", "deactivated", "inactive", "frozen", "locked", "expired", "terminated",
                 "archived")),
         Phrase(r"(?:disabled|suspended|deactivated|inactive|frozen|locked) (?:account|mailbox|user|recipient)",
                ("disabled", "suspended", "deactivated", "inactive", "frozen", "locked")),
         r"temporar(?:y|ily) locked", r"mailbox (?:currently )?suspended", r"is a deactivated mailbox", r"recipient suspend",
         r"archived recipient", r"boite du destinataire archivee", r"compte du destinataire est bloque",
         r"recipient account is ?blocked", r"user suspended", r"user is terminated",
         r"account that you tried to reach is disabled",
         r"invalid/inactive user", r"user or domain is disabled", r"disabled or discontinued", r"no longer accepts mail",
         r"due to extended inactivity",
         Phrase(r"(?:currently|has been|temporarily) (?:suspended|inactive|disabled)", ("suspended", "inactive", "disabled")),
         r"administrative?le?y disabled",
         r"account is temporarily limited",
         r"mailbox cannot be accessed", r"access denied, banned recipient",
         r"mailbox unavailable or access denied"),
    rule("text.hasmoved", "hasmoved",
         r"has been replaced by", r"(?:address|mailbox|user|recipient) has moved", r"no longer (?:on|at) (?:this )?server",
         r"not our customer", r"moved permanently", r"changed (?:his|her|their) e-?mail address",
         skip_at=DEAD_ADDRESS_SKIP),
    # -- 2. relaying, sender authentication and the sending host's DNS ------------------------------
    # "Not permitted to relay without authentication" asks the client to log in: a security setting.
    rule("text.securityerror-auth", "securityerror",
         r"turn on smtp authentication", r"relay through this server without authentication",
         r"authentication (?:is )?required (?:to|for) (?:send|relay)",
         r"authentication turned on", r"you don\'t authenticate", r"not subscribed to ses"),
    rule("text.norelaying", "norelaying",
         r"relay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed)|prohibited)", r"not (?:permitted|allowed) to relay",
         r"unable to relay", r"we do not relay", r"no relaying", r"relaying mail to .{1,80} is not allowed", r"as a relay",
         r"not an open relay", r"insecure mail relay", r"this system is not configured to relay", r"not a gateway",
         r"(?:list of allowed|my) rcpthosts?", r"we don't handle mail for", r"open relay (?:is )?not allowed",
         r"email address is not verified", r"relaying mail to ", r"not local host",
         r"send to a non-local e-?mail address",
         skip_at=GREETING),
    rule("text.authfailure", "authfailure",
         r"spf (?:check|validation|verification|authentication|record)?:? ?(?:fail|failed|failure|error|hard ?fail|softfail)",
         Phrase(r"(?:fail(?:ed|s|ing)?|did not pass|not pass|does not pass) (?:the )?(?:spf|dkim|dmarc)",
                ("spf", "dkim", "dmarc")),
         r"dmarc (?:policy|verification|check|reject)", r"dkim (?:signature|validation|verification|check) (?:fail|invalid|not)",
         r"(?:spf|dkim|dmarc) sender invalid", r"sender policy framework", r"domainkeys", r"bad spf records",
         r"inspect your spf settings", r"per it'?s spf record", r"requires all senders to authenticate",
         r"must pass either spf or dkim", r"unauthenticated (?:e-?mail|mail|message)s? from", r"is not allowed to send mail\.",
         r"spf\.pobox\.com"),
    rule("text.notcompliantrfc", "notcompliantrfc",
         r"not rfc ?5322 compliant", r"not rfc ?2822 compliant", r"rfcmessagenoncompliant", r"headers are not rfc compliant",
         r"multiple (?:subject|from|date|to|message-id) headers", r"messages? with multiple addresses in from",
         r"rfc ?5322 section", r"blank from: addresses"),
    rule("text.requireptr", "requireptr",
         r"reverse (?:dns|lookup|dns lookup) (?:failed|required|for|record)", r"\bptr\b", r"\brdns\b",
         r"cannot find your (?:reverse )?hostname", r"(?:no|missing|without|no valid) reverse dns", r"reverse dns",
         r"ip name lookup failed", r"unresolvable relay host name", r"dns check failure", r"mismatches client ip",
         r"unverif[iy]able sending ip",
         r"reverse lookup rejected", r"forward dns entry does not point to the sending ip",
         r"dns lookup failure: .{1,80} try again later"),
    # RFC 7505 null MX: the domain says it takes no mail (a DNS answer, so before the DNS failures).
    rule("text.notaccept-nullmx", "notaccept",
         r"null mx", r"doesn't receive email", r"no smtp service", r"does not accept (?:e-?)?mail(?! from)",
         r"name server: \.: host not found", r"smtp protocol returned a permanent error", r"no mx record found for domain",
         r"no host found for existing smtp connection", r"couldn\'t find a mail exchanger or ip address",
         skip_at=DEAD_ADDRESS_SKIP),
    # A temporary DNS failure is not proof that the domain does not exist.
    rule("text.networkerror-dns", "networkerror",
         r"host not found, try again", r"name server reply", r"dns (?:lookup |query )?fail",
         r"host name lookup failure", r"temporary (?:dns|lookup|resolver) (?:failure|error)",
         r"unrouteable mail domain"),
    rule("text.systemfull", "systemfull", r"(?:mail )?system (?:is )?full", r"insufficient system storage",
         r"not enough free space",
         r"insufficient system resources"),
    # -- 3. the address itself (the only reasons that can be hard) ----------------------------------
    rule("text.hostunknown", "hostunknown",
         r"host (?:unknown|not found|or domain name not found)", r"unknown host",
         r"(?:recipient |mail )?domain (?:not found|does not exist|unknown|must exist|is not reachable|name not found)",
         r"no such domain", r"name or service not known", r"unroutable address",
         r"domain (?:is )?(?:not|no longer) (?:registered|valid)", r"unknown domain", r"the account or domain may not exist",
         r"mail domain mentioned in email address is unknown", r"host unreachable",
         r"(?:^|: |\d{3} )[a-z0-9-]+(?:\.[a-z0-9-]+)+ does not exist", r"nxdomain", r"no (?:mx|mail exchanger) (?:record )?for",
         r"unrouteable address", r"recipient address rejected: unknown domain",
         r"all host address lookups failed permanently", r"mx records point to non-existent hosts",
         r"couldn\'t find any host", r"dns server returned answer with no data",
         r"weren\'t able to find the recipient domain",
         skip_at=DEAD_ADDRESS_SKIP),
    # The final mailbox host speaking about its own directory: no need to place the words.
    rule("text.userunknown-directory", "userunknown",
         r"recipient name is not recognized", r"invalid final delivery userid", r"not listed in (?:the )?(?:domino )?directory",
         r"address not present in directory",
         r"not found in (?:the )?(?:domino )?directory", r"ディレクトリには見つかりません",
         r"not listed in public name & address book", r"no se encuentra en el directorio", r"non répertorié dans l\'annuaire",
         skip_at=DEAD_ADDRESS_SKIP),
    rule("text.userunknown", "userunknown",
         r"user ?unknown", r"unknown (?:user|recipient|mailbox|local[- ]?part|e-?mail address|addressee)",
         Phrase(rf"{_BOX}(?: name)? {_GONE}", ("exist", "found", "known", "unavailable", "valid")), rf"no such {_BOX}",
         Phrase(rf"{_BOX}s? (?:is |was )?(?:not a |an )?(?:invalid|unknown|non-?existent|not found)",
                ("valid", "known", "existent", "found")),
         r"invalid (?:recipient|mailbox|address|user)", r"not a (?:valid|known) (?:mailbox|user|recipient)",
         r"is not a known user", r"no (?:mail ?box|account) (?:by that name|here|found|available)",
         r"mailbox (?:not present|invalid)", r"user doesn't have an? .{1,60} account",
         r"bad destination mailbox", r"unknown or illegal alias", r"recipient (?:address )?rejected: (?:unknown|invalid)",
         r"non-?existent (?:user|recipient|mailbox|address)", r"there is no one at this address", r"no such person",
         r"not a valid user", r"badrcptto", r"validrcptto", r"recipient not (?:ok|exist)",
         r"is not (?:a )?local (?:address|recipient)", r"user missing home directory",
         r"requested action not taken: mailbox unavailable", r"mailbox unavailable", r"utilisateur inconnu",
         r"destinataire invalide", r"resolver\.adr\.recipient", r"recipient notfound",
         r"the email account that you tried to reach does not exist",
         r"mailbox (?:is )?(?:unavailable|inactive)", r"unable to deliver message to <[^>]+> \(and other recipients",
         r"bad recipient", r"address (?:is )?(?:wrong|no longer valid)",
         r"bad (?:destination )?address\b", r"can\'t accept user", r"destination addresses were unknown",
         r"rejected recipients", r"address could not be found", r"not an active address", r"mailbox unavai?l?able",
         r"nessun utente simile", r"no existe (?:dicha persona|ese usuario)", r"not a local address",
         r"recipient is not (?:local|accepted)", r"not email addresses", r"recipient refuses to accept your mail",
         r"envelope recipient (?:has been denied|is in my badrcptto)", r"recipients was undeliverable",
         r"email name is not found", r"badrecipientto", r"spectator does not exist", r"user not active",
         r"invalid or unknown virtual user",
         r"<[^>]{1,80}> not found", r"account \S+ does not exist at the organization", r"mailbox \S+ does not exist",
         r"no \S+ in name directory", r"rcpt (?:<[^>]{1,80}>|\([^)]{1,80}\)) does ?n[o\']t exist",
         r"recipient \S+ was not found in", r"user \S+ (?:was not found|does not exist)",
         r"user \([^)]{1,80}\) unknown", r"recipient address rejected\. \(in reply to rcpt",
         r"recipient address reserved by rfc 2606",
         r"no valid recipients for this mm",
         skip_at=DEAD_ADDRESS_SKIP),
    # Postfix check_recipient_access "REJECT" reads "Recipient address rejected: Access denied": a policy
    # on that recipient, not proof it does not exist (Exchange Online's 5.4.1 form is a provider rule).
    rule("text.filtered-access", "filtered", r"recipient address rejected: access denied", skip_at=GREETING),
    rule("text.filtered", "filtered",
         r"refused due to recipient preferences", r"(?:refused|rejected|blocked) by (?:the )?recipient(?! domain| server)",
         r"user reject", r"recipient (?:is )?only accepting mail from", r"message rejected due to user rules",
         r"this account is protected by", r"you have been blocked by the recipient", r"has restricted sms e-mail",
         r"bounced address", r"recipient id refuse to receive mail",
         r"is not accepting any mail", r"message filtered", r"does not accept mail from you",
         r"cannot route mail to user",
         skip_at=GREETING),
    rule("text.policyviolation", "policyviolation",
         r"polic(?:y|ies) violation", r"(?:rejected|not accepted|refused) for policy reasons", r"denied by policy",
         r"illegal attachment", r"members-only list", r"closed mailing list", r"not subscribed to this group",
         r"organizational settings", r"content presents a potential",
         r"attachments? (?:extension )?(?:is )?(?:forbidden|not allowed)",
         r"protocol violation", r"we do not accept messages containing", r"message given low priority", r"header error",
         r"header are not accepted", r"security policies",
         r"not accepting mail with"),
    rule("text.rejected", "rejected",
         r"sender (?:e-?mail )?(?:address )?(?:rejected|denied|refused|blocked|is not allowed|not allowed|invalid"
         r"|verify failed|unknown)",
         r"domain of sender", r"invalid sender", r"sender (?:domain )?(?:must exist|is (?:invalid|empty))", r"unroutable sender",
         r"(?:envelope|mail) from:? ?<?[^ >]*@[^ >]*>? .{0,20}(?:rejected|refused|invalid)", r"mail from not owned",
         r"emetteur invalide",
         r"bogus mail from", r"sender address has been blacklisted", r"sender is (?:in my black list|spammer)",
         r"sender not pre-approved", r"null sender is not allowed", r"empty envelope senders", r"no third-party dsns",
         r"unsigned dsn", r"(?:from|sender) domain (?:is invalid|does not exist|not found)",
         r"fully qualified email address required", r"\bbatv\b",
         r"backscatter protection", r"returned mail not accepted", r"sending this from a different address or alias",
         r"send mail as", r"your (?:e-?mail )?address has been blacklisted", r"address (?:is|has been) blacklisted",
         r"not allowed to post to this (?:mailing )?list", r"not a registered gateway user", r"administrative prohibition",
         r"from an address that has been blacklisted", r"denied \[bouncedeny\]", r"senderfilterconfig",
         r"will be permanently deferred", r"rule imposed mailbox access", r"this server does not accept mail from",
         r"can't determine purported responsible address", r"spam reporting address", r"your access to submit messages",
         r"you are not authorized to send mail as", r"sender was not authenticated", r"sender not in allowed",
         r"access denied \((?:in reply to mail from|sender blacklisted)", r"on the recipient\'s list of senders",
         r"without a valid sender domain", r"valid-address-filter", r"delivery not authorized, message refused",
         r"envelope blocked", r"from: domain is invalid", r"recipient addresses rejected ?: access denied",
         r"empty email address",
         r"rfc 1035 violation", r"recursive cname records", r"to submit messages to this e-?mail system",
         r"not member article from", r"reject mail from", r"not a member of this mailing list",
         r"spam mail from a spammer is rejected"),
    rule("text.notaccept", "notaccept",
         r"does not accept (?:e-?)?mail(?! from)", r"null mx", r"not accepting (?:e-?)?mail(?! with| from)",
         r"no mx record found",
         r"no route for current request", r"accepts no mail", r"name server: \.: host not found", r"no smtp service",
         skip_at=DEAD_ADDRESS_SKIP),
    # The receiving system's own trouble (alias or MX loops, directory down) named as the cause: it
    # outranks the queue giving up on the message because of it.
    rule("text.systemerror-local", "systemerror",
         r"aliasing/forwarding loop", r"would create a mail loop", r"loop was found in the mail exchanger",
         r"loops back to myself", r"encountered an error while being processed", r"there is no mdb",
         r"timeout waiting for input",
         r"unable to contact ldap", r"ldap server (?:is )?(?:down|unavailable|not responding)",
         r"delivery to (?:file|pipe) forbidden", r"local delivery failed", r"lmtp error after",
         r"bad interpreter: no such file", r"(?:search on|lookup|login into|contact) ldap server", r"ldap lookup",
         r"ldap attribute", r"homedir creat", r"executing qmail-forward", r"results returned but needs to be unique",
         r"several matches found in (?:the )?(?:domino )?directory",
         r"system incorrectly configured", r"misconfigured forwarding address", r"mailing list expansion problem",
         r"destination mailbox address ambiguous", r"suspiciousremoteservererror", r"pfa agent busy",
         r"service not active", r"exchange server authentication",
         r"dns violates rfc ?1035",
         r"duplicated message-id", r"detected a loop condition", r"loop back warning", r"unix from loop"),
    # The queue's final verdict after days of retries outranks the last transient error it quotes.
    rule("text.expired-giveup", "expired",
         r"could not be delivered for (?:more than )?\d+ (?:days|hours)", r"will be deleted from (?:the )?queue",
         r"message expired after sitting in queue"),
    rule("text.badreputation", "badreputation", r"reputation"),
    # -- 4. content, sender reputation, spam, rate limits and IP blocks ------------------------------
    rule("text.virusdetected", "virusdetected",
         r"\bvirus", r"malware", r"\binfected", r"potentially executable attachment", r"malicious_url"),
    # A sending host known for spam is blocked, whatever the message says.
    rule("text.blocked-spam-source", "blocked",
         r"sending spam", r"spams? from your ip", r"spam ips blocked", r"blocked for spamming", r"listed as abusive"),
    rule("text.spamdetected", "spamdetected",
         r"\bspam\b(?! ?(?:haus|cop|ip))", r"spam (?:detected|content|score|message|filter|email|refused|rejected)",
         r"junk mail", r"\buce\b", r"\bube\b", r"unsolicited", r"bulk (?:e-?)?mail", r"mail content denied",
         r"message content rejected", r"content filter rejection", r"rejecting (?:banned|mail) content",
         r"this message (?:appears|looks) to be", r"blacklisted url", r"uribl", r"surbl", r"mail rejete",
         r"high probability of", r"unacceptable content", r"recurrent pattern detection", r"message looks like",
         r"our system has detected that this message",
         r"spamassassin", r"spamming not allowed", r"bulk\.advertising", r"mass mailer", r"sender domain listed at",
         r"content filter agent quarantined",
         skip_at=BEFORE_RCPT),
    rule("text.toomanyconn", "toomanyconn",
         r"too many (?:connections|recipients|simultaneous|concurrent|sessions|smtp sessions|errors)",
         r"connection (?:rate )?limit", r"frequency limited", r"trop de connexions", r"max message per connection",
         r"message threshold exceeded", r"maximum connection", r"max emails per hour", r"numerous attempts"),
    rule("text.speeding", "speeding",
         r"(?:sending|message) rate", r"rate limit(?:ed)?", r"too many messages", r"throttl", r"try again slower",
         r"receiving mail (?:too quickly|at a rate)", r"sent too many", r"too fast"),
    rule("text.blocked", "blocked",
         r"black ?list", r"block ?list", r"(?<!not )listed (?:in|on|at|by)",
         r"spamhaus", r"spamcop", r"\brbl\b", r"dnsbl", r"\bdbl\b",
         r"client host (?:\[.{1,80}?\] )?(?:rejected|blocked)",
         Phrase(r"(?:your|sending|source|client|sender) (?:ip|host|server|network)(?: address)?(?: \S+)? "
                r"(?:is |was |has been )?(?:blocked|banned|rejected|listed|not allowed|refused|blacklisted)",
                ("blocked", "banned", "rejected", "listed", "not allowed", "refused")),
         r"connection (?:refused|rejected|denied|dropped|reset)", r"\bbanned", r"blocked (?:by|using|for|due)", r"was blocked",
         r"adresse ip source bloquee", r"blocked for spamming", r"not currently accepting mail from your ip",
         r"esmtp not accepting connections", r"service refuse", r"helo command rejected", r"invalid (?:helo|domain name)",
         r"dynamic ip", r"open proxy", r"go away", r"please use the smtp server of your isp", r"confirm this mail server",
         r"refused to talk to me", r"host network not allowed", r"your (?:ip|server) requires", r"access from ip address",
         Phrase(r"ip ?address .{0,60}(?:blocked|rejected|refused)", ("ip address", "ipaddress")), r"ip .{0,40}(?:is )?blocked",
         Phrase(r"\bbl\d{2}\b", tuple(f"bl{d}" for d in range(10))), r"\(bl\)",
         r"your remotehost looks suspiciously", r"no access from mail server", r"too many invalid recipients",
         r"relay quota", r"my name was rejected", r"invalid ip for sending", r"unwanted messages have been sent from",
         r"bad (?:sender )?ip", r"(?:blocked|refused) - see http", r"connection was dropped",
         r"no valid recipients from", r"no matches to nameserver query", r"has not passed validation",
         r"forbidden by your ip", r"closing transmission channel", r"not allowed to connect",
         r"unexpected volume or user complaints", r"\(\S+@\S+:blocked\)", r"mail server at \S+ is blocked",
         r"mail from \d{1,3}(?:\.\d{1,3}){3} refused",
         r"is not allowed to send mail from"),
    # -- 5. security, network, queue, content, system, protocol --------------------------------------
    # The receiving side lacks what the sender's policy requires: its system, not our security.
    rule("text.systemerror-notls", "systemerror", r"(?:does not|doesn't) support (?:tls|starttls)"),
    rule("text.securityerror", "securityerror",
         r"starttls", r"\btls\b", r"\bssl\b", r"authentication (?:required|failed|failure|credentials)", r"certificate",
         r"unauthenticated senders", r"authentication is required", r"not authenticated", r"must authenticate",
         r"authentification (?:requise|invalide)", r"encryption", r"verification failure", r"executable files",
         r"smtp authentication",
         r"could not retrieve credentials",
         r"security alert"),
    rule("text.networkerror", "networkerror",
         r"network (?:is )?unreachable", r"network error", r"no route to host", r"host is unreachable",
         r"(?:mail|routing|forwarding) loop", r"too many hops", r"hop count exceeded", r"loop (?:was )?(?:detected|found)",
         r"message looping", r"unable to resolve", r"dns records for the destination", r"could not connect",
         r"domain (?:is )?not reachable",
         r"wasn\'t able to establish an smtp connection", r"listed as a best-preference mx", r"dns error",
         r"address family mismatch on destination", r"all routes to destination blocked", r"bad dns lookup error code",
         r"could not retrieve source address", r"no valid route to", r"temporary failure in mx lookup",
         r"no mx found for"),
    rule("text.expired", "expired",
         r"retry time(?:out)? (?:exceeded|not reached)", r"(?:message|delivery time) (?:has )?expired", r"delivery time expired",
         r"too long in (?:the )?queue", r"in the queue too long", r"could not be delivered (?:within|for)", r"giving up",
         r"time(?:d)? ?out", r"delivery attempts will continue", r"have been failing for a long time", r"has been delayed",
         r"did not accept our requests to connect", r"unable to deliver message after multiple retries", r"failed \d+ attempts",
         r"not reachable within the allowed queue period", r"server did not respond", r"could not find a gateway",
         r"will be retried", r"expired after", r"could not be delivered for more than",
         r"failed to deliver to domain", r"has not been collected after",
         r"no action is required on your part", r"has been frozen", r"frozen on arrival",
         r"(?:was|were) not delivered within",
         r"envelope expired"),
    rule("text.contenterror", "contenterror",
         r"invalid (?:mime )?header", r"content rejected", r"8-bit data", r"duplicate header", r"header size exceeds",
         r"mime complexity", r"improperly-formatted", r"unnecessary base64", r"malformed message",
         r"bare (?:lf|line feed)"),
    rule("text.systemerror", "systemerror",
         r"system (?:error|config)", r"internal (?:server )?error", r"configuration error", r"i/o error",
         r"local error in processing", r"temporary local problem", r"server is misconfigured",
         r"service (?:currently )?unavailable", r"interrupted system call", r"could not load", r"queue file write error",
         r"timeout waiting for input", r"transaction failed", r"try again later", r"try later", r"aliasing/forwarding loop",
         r"loops back to myself", r"mail exchanger loop", r"can't create user output file", r"service refused",
         r"technical problem"),
    rule("text.policy", "policyviolation", r"polic(?:y|ies)", r"prohibited"),
    rule("text.syntaxerror", "syntaxerror", r"syntax error", r"command unrecognized", r"bad sequence of commands",
         r"command not implemented", r"command parameter not implemented",
         r"angle-brackets nested too deep", r'expected word or "<"', r"domain missing in source-routed address",
         r"malformed address:",
         r"send hello first"),
)


# A reporting MTA's own classification codes ("text.code.*"): they outrank even a decisive status code,
# the words and status being the remote server's and the code the reporting MTA's reading of both.
CODE_RULES: tuple[TextRule, ...] = tuple(r for r in TEXT_RULES if r.id.startswith("text.code."))
_WORD_RULES: tuple[TextRule, ...] = tuple(r for r in TEXT_RULES if not r.id.startswith("text.code."))


def match_code(text: str, command: str | None = None) -> tuple[TextRule, str] | None:
    """The first reporting-MTA classification code in normalised ``text`` and the text it matched."""
    for r in CODE_RULES:
        if command and command in r.skip_at:
            continue
        m = r.search(text)
        if m:
            return r, m.group(0)
    return None


# Causes that, named anywhere in the same reply, mean "no such user" words were the server's generic
# refusal text (RFC 5321's "550 Requested action not taken: mailbox unavailable" is used for every kind
# of 550): the address is not proven dead (Sisimai's UserUnknown applies the same check).
OTHER_CAUSES = frozenset({
    "blocked", "spamdetected", "rejected", "policyviolation", "badreputation", "virusdetected", "toomanyconn",
    "speeding", "securityerror", "norelaying", "authfailure", "requireptr",
})
_ADDRESS_REASONS = frozenset({"userunknown", "hostunknown"})


def match_text(text: str, command: str | None = None) -> tuple[TextRule, str] | None:
    """The first rule matching normalised ``text`` at SMTP stage ``command`` and the text it matched.

    A dead-address rule yields to a later rule naming another cause in the same text.
    """
    first: tuple[TextRule, str] | None = None
    for r in _WORD_RULES:
        if command and command in r.skip_at:
            continue
        if first is not None and r.reason not in OTHER_CAUSES:
            continue
        m = r.search(text)
        if m:
            if first is not None:
                return r, m.group(0)
            if r.reason not in _ADDRESS_REASONS:
                return r, m.group(0)
            first = (r, m.group(0))
    return first
