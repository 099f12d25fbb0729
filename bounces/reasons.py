"""Why a message did not arrive, in one vocabulary, and what each reason means.

Every source of failures speaks it: the mailbox classifier, the sending engine's
SMTP-time rejections, ESP webhooks and the admin. `reason_for()` turns an RFC 3463
status, the diagnostic text and the SMTP stage into a `Judgement`:

1. Status class and subject first. 2.x.x is no failure; 4.x.x is transient; a few
   subjects name the cause outright whatever the text says (x.2.2 mailbox full, x.2.3
   and x.3.4 too big, x.7.13 disabled, x.1.6 moved, x.1.7/x.1.8 the sender's address).
2. Then the text, one group of phrasings per reason, in `TEXT_PATTERNS` order: the
   sender's problems (content, blocks, authentication, rate, quota) come before
   "no such user", so a block worded as a recipient refusal stays soft even with a
   5.1.x or 5.7.1 status.
3. Then the MTA's own format (PowerMTA's bounce category), then the status subject.

`CONSEQUENCES` says what each reason does to the address. Only reasons that say the
address itself is unusable are hard, and only when the failure is permanent; "user
unknown" also needs proof that the address was looked up (a 5.1.x status, a refusal
of RCPT TO, or a wording only a directory lookup produces), because content filters
refuse messages after DATA with the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import models


class Verdict(models.TextChoices):
    HARD = "hard", "Hard bounce"
    SOFT = "soft", "Soft bounce"
    COMPLAINT = "complaint", "Complaint"
    # Delivery is still being retried: recorded on the queue item, never a bounce.
    DELAYED = "delayed", "Delayed (still retrying)"


class Reason(models.TextChoices):
    USER_UNKNOWN = "user unknown", "User unknown"
    MAILBOX_DISABLED = "mailbox disabled", "Mailbox disabled"
    HOST_UNKNOWN = "host unknown", "Host or domain unknown"
    HAS_MOVED = "has moved", "Address has moved"
    NOT_ACCEPTED = "not accepted", "Domain accepts no mail"
    MAILBOX_FULL = "mailbox full", "Mailbox full"
    MESSAGE_TOO_BIG = "message too big", "Message too big"
    CONTENT_REJECTED = "content rejected", "Content or spam rejected"
    POLICY = "policy", "Policy or blocked"
    AUTHENTICATION = "authentication", "Authentication (SPF/DKIM/DMARC)"
    RATE_LIMITED = "rate limited", "Rate limited"
    EXPIRED = "expired", "Expired (retries ran out)"
    DELAYED = "delayed", "Delayed (still retrying)"
    SYSTEM_ERROR = "system error", "System error"
    NETWORK_ERROR = "network error", "Network error"
    ON_HOLD = "on hold", "On hold"
    COMPLAINT = "complaint", "Complaint"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    VACATION = "vacation", "Vacation reply"
    UNDEFINED = "undefined", "Undefined"


# What a permanent failure for the reason does. "hard": the address is invalid;
# "soft": logged, counted toward the soft-bounce threshold; "complaint": opted out;
# "delayed": noted on the queue item; "none": not a failure at all.
CONSEQUENCES: dict[str, str] = {
    Reason.USER_UNKNOWN: "hard",
    Reason.MAILBOX_DISABLED: "hard",
    Reason.HOST_UNKNOWN: "hard",
    Reason.HAS_MOVED: "hard",
    Reason.NOT_ACCEPTED: "hard",
    Reason.MAILBOX_FULL: "soft",
    Reason.MESSAGE_TOO_BIG: "soft",
    Reason.CONTENT_REJECTED: "soft",
    Reason.POLICY: "soft",
    Reason.AUTHENTICATION: "soft",
    Reason.RATE_LIMITED: "soft",
    Reason.EXPIRED: "soft",
    Reason.DELAYED: "delayed",
    Reason.SYSTEM_ERROR: "soft",
    Reason.NETWORK_ERROR: "soft",
    Reason.ON_HOLD: "soft",
    Reason.COMPLAINT: "complaint",
    Reason.UNSUBSCRIBED: "complaint",
    Reason.VACATION: "none",
    Reason.UNDEFINED: "soft",
}
HARD_REASONS = frozenset(r for r, consequence in CONSEQUENCES.items() if consequence == "hard")

# Names stored before this vocabulary (classifier, webhooks, anymail's reject reasons).
LEGACY_NAMES: dict[str, str] = {
    "userunknown": Reason.USER_UNKNOWN,
    "hostunknown": Reason.HOST_UNKNOWN,
    "disabled": Reason.MAILBOX_DISABLED,
    "suspend": Reason.MAILBOX_DISABLED,
    "hasmoved": Reason.HAS_MOVED,
    "notaccept": Reason.NOT_ACCEPTED,
    "mailboxfull": Reason.MAILBOX_FULL,
    "toobig": Reason.MESSAGE_TOO_BIG,
    "mesgtoobig": Reason.MESSAGE_TOO_BIG,
    "spam": Reason.CONTENT_REJECTED,
    "spamdetected": Reason.CONTENT_REJECTED,
    "filtered": Reason.CONTENT_REJECTED,
    "contenterror": Reason.CONTENT_REJECTED,
    "virusdetected": Reason.CONTENT_REJECTED,
    "blocked": Reason.POLICY,
    "rejected": Reason.POLICY,
    "policyviolation": Reason.POLICY,
    "securityerror": Reason.POLICY,
    "authfailure": Reason.AUTHENTICATION,
    "ratelimit": Reason.RATE_LIMITED,
    "speeding": Reason.RATE_LIMITED,
    "toomanyconn": Reason.RATE_LIMITED,
    "timedout": Reason.EXPIRED,
    "systemerror": Reason.SYSTEM_ERROR,
    "systemfull": Reason.SYSTEM_ERROR,
    "network": Reason.NETWORK_ERROR,
    "networkerror": Reason.NETWORK_ERROR,
    "onhold": Reason.ON_HOLD,
    "abuse": Reason.COMPLAINT,
    "feedback": Reason.COMPLAINT,
    "invalid": Reason.USER_UNKNOWN,
    "bounced": Reason.UNDEFINED,
    "other": Reason.UNDEFINED,
    "": Reason.UNDEFINED,
}


def normalise(name: str) -> str:
    """A reason name in this vocabulary, whichever spelling it was stored under."""
    name = (name or "").strip().lower()
    if name in Reason.values:
        return name
    key = re.sub(r"[\s_-]", "", name)
    return LEGACY_NAMES.get(key, Reason.UNDEFINED)


@dataclass(frozen=True)
class Judgement:
    reason: str
    verdict: str
    is_hard: bool


# --------------------------------------------------------------------- status codes

ENHANCED_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")

# RFC 3463 and the IANA registry: subject.detail -> reason, when the text says nothing.
STATUS_REASONS: dict[str, str] = {
    "1.1": Reason.USER_UNKNOWN,
    "1.2": Reason.HOST_UNKNOWN,
    "1.3": Reason.USER_UNKNOWN,
    "1.6": Reason.HAS_MOVED,
    # x.1.7 / x.1.8 are about the *sender's* address: the recipient is not at fault.
    "1.7": Reason.POLICY,
    "1.8": Reason.POLICY,
    "1.10": Reason.NOT_ACCEPTED,
    "2.1": Reason.MAILBOX_DISABLED,
    "2.2": Reason.MAILBOX_FULL,
    "2.3": Reason.MESSAGE_TOO_BIG,
    "3.2": Reason.NOT_ACCEPTED,  # "System not accepting network messages"
    "3.4": Reason.MESSAGE_TOO_BIG,
    "4.7": Reason.EXPIRED,
    "7.13": Reason.MAILBOX_DISABLED,
    "7.23": Reason.AUTHENTICATION,
    "7.25": Reason.POLICY,
    "7.26": Reason.AUTHENTICATION,
}
STATUS_SUBJECT_REASONS: dict[str, str] = {
    "3": Reason.SYSTEM_ERROR,
    "4": Reason.NETWORK_ERROR,
    "6": Reason.CONTENT_REJECTED,
    "7": Reason.POLICY,
}
# Subjects specific enough that the text is not consulted. The address ones (x.1.1,
# x.1.2) are not here: "5.1.1 mailbox full" is a full mailbox.
# x.1.10 is not: RFC 7505 gives it to null MX, Exchange Online to "recipient not found".
DECISIVE_STATUSES = frozenset({"2.2", "2.3", "3.2", "3.4", "7.13", "1.6", "1.7", "1.8"})
# Codes that name the address itself: no such mailbox or domain, account disabled.
ADDRESS_STATUS_PREFIXES = ("5.1.", "5.7.13")


def status_in(text: str) -> str:
    found = ENHANCED_STATUS_RE.search(text or "")
    return ".".join(found.groups()) if found else ""


def reason_from_status(status: str) -> str:
    rest = status.partition(".")[2]
    if rest in STATUS_REASONS:
        return STATUS_REASONS[rest]
    return STATUS_SUBJECT_REASONS.get(rest.split(".")[0], Reason.UNDEFINED)


# ---------------------------------------------------------------------- text patterns

# Exchange Online's directory-based edge blocking refuses an address it does not host
# with exactly this wording (then only a tracking id); "access denied" followed by a
# cause is a block.
DIRECTORY_ACCESS_DENIED = r"recipient address rejected: access denied[.\s]*(?:$|\[|\(|as\()"

# Ordered: the first group that matches names the reason.
TEXT_PATTERNS: list[tuple[str, list[str]]] = [
    (Reason.USER_UNKNOWN, [DIRECTORY_ACCESS_DENIED]),
    (
        # A local delivery program failed: the mailer's problem, whatever it printed.
        Reason.SYSTEM_ERROR,
        [
            r"command output",
            r"command died",
            r"procmail",
            r"mail(?:box)? delivery program",
            r"pipe to \|",
        ],
    ),
    (
        Reason.MAILBOX_FULL,
        [
            r"mailbox (?:is )?full",
            r"mail ?box full",
            r"over ?quota",
            r"quota (?:exceeded|exceed|full)",
            r"exceeded (?:the )?(?:storage|quota)",
            r"insufficient (?:disk |system )?storage",
            r"mailbox (?:size )?limit",
            r"out of (?:disk )?space",
            r"disk quota",
            r"user is over",
            r"mailfolder is full",
            r"storage (?:quota|allocation) exceeded",
            r"has exceeded (?:its|his|her) (?:storage|quota)",
            r"not enough space",
            r"boite (?:aux lettres )?pleine|boîte (?:aux lettres )?pleine",  # La Poste, Orange
            r"postfach (?:ist )?voll",  # GMX, Web.de
        ],
    ),
    (
        Reason.MESSAGE_TOO_BIG,
        [
            r"message (?:is )?too (?:big|large)",
            r"size exceeds",
            r"exceeds? (?:the )?(?:maximum|max)(?: allowed)? (?:message )?size",
            r"message size",
            r"too large",
            r"message length exceeds",
        ],
    ),
    (
        Reason.RATE_LIMITED,
        [
            r"rate limit",
            r"too many (?:messages|connections|recipients)",
            r"try again later",
            r"throttl",
            r"temporarily deferred",
            r"sending rate",
            r"at a rate that",
            r"receiving rate",
            r"\[ts0[1-4]\]",  # Yahoo's deferral codes
        ],
    ),
    (
        Reason.AUTHENTICATION,
        [
            r"\bdmarc\b",
            r"\bspf\b",
            r"\bdkim\b",
            r"authenticat",
            r"sender policy framework",
            r"not authorized to send",
        ],
    ),
    (
        Reason.CONTENT_REJECTED,
        [
            r"\bspam(?!haus|cop)",  # not the blocklists' names: those are blocks
            r"junk mail",
            r"content (?:filter|rejected)",
            r"bulk mail",
            r"\bvirus",
            r"malware",
            r"message (?:content )?rejected",
            r"suspicious",
            r"unsolicited",
            r"\[ph01\]",  # Yahoo: a suspected phishing message
            r"phish",
            r"content restriction",
            r"prohibited attachment",
            r"attachment (?:type )?(?:is )?(?:not allowed|rejected|blocked|forbidden)",
            r"banned (?:file|attachment)",
        ],
    ),
    (
        Reason.POLICY,
        [
            r"blocked",
            r"black ?list",
            r"block ?list",
            r"\brbl\b",
            r"\bdnsbl\b",
            r"spamhaus",
            r"spamcop",
            # Blocklists and reputation services named in refusals.
            r"barracuda|sorbs|uceprotect|spamrats|mailspike|cloudmark|senderscore",
            r"\b(?:pbl|sbl|xbl|cbl|dbl)\b",
            r"greylist|graylist",
            r"(?:too many|user) complaints",
            r"(?<!not )listed (?:at|in|on|by)",
            r"reputation",
            r"reverse (?:dns|lookup)",
            r"\bptr\b",
            r"\bhelo\b",
            r"banned",
            r"not allowed to send",
            r"refused to talk",
            r"access denied",
            r"relay(?:ing)? (?:access )?denied",
            r"relaying (?:not )?(?:allowed|permitted)",
            r"unable to relay",
            r"not permitted to relay",
            r"as a relay",  # MessageLabs: "you are trying to use me ... as a relay"
            r"smtp server of your isp",
            r"dynamic ip",
            r"client host rejected",
            r"sender (?:address )?rejected",
            r"domain of sender",
            r"sender verify failed",
            r"rejected by (?:the )?(?:filter|policy)",
            r"tls required",
            r"my name was rejected",
            r"open relay",
            r"no access from",
            r"requires? (?:a )?(?:secure|tls|encrypt)",
            r"will not accept delivery of this message",  # AOL's 521 5.2.1 block
            r"\[(?:bl|rl|dc|ip)\d\d\]",  # AOL/Verizon block codes
            r"\bpolicy\b",
            r"administrative prohibition",
            r"prohibited",
            r"not compliant",
            r"rfc ?5322",
            r"message header",
            r"header (?:is|was) (?:not|invalid)",
        ],
    ),
    (
        Reason.MAILBOX_DISABLED,
        [
            r"account (?:has been |is |was )?(?:disabled|suspended|deactivated|inactive|locked|"
            r"closed|expired|blocked|discontinued)",
            r"mailbox (?:has been |is |was )?(?:disabled|suspended|deactivated|inactive|closed|"
            r"locked)",
            r"(?:disabled|suspended|inactive|deactivated|closed) (?:account|mailbox|user)",
            r"user (?:account )?(?:is )?(?:disabled|suspended|inactive|deactivated)",
            r"no longer (?:active|in use|valid|available|exists)",
            r"is not accepting (?:any )?mail",
            r"account is unavailable",
            r"(?:mailbox|account) is frozen",
            r"(?:email )?account that you tried to reach is (?:disabled|inactive)",  # Google
            r"mailbox disabled, not accepting",  # Sun Messaging Server's 5.2.1
        ],
    ),
    (
        Reason.HAS_MOVED,
        [r"has moved", r"address (?:has )?changed", r"no longer at this address"],
    ),
    (
        Reason.HOST_UNKNOWN,
        [
            r"host (?:or domain name |[\w.-]+\.[a-z]{2,} )?not found(?!, try again)",
            r"unknown host",
            r"no such (?:host|domain)",
            r"domain (?:name )?(?:not found|does not exist|unknown|doesn't exist)",
            r"unrouteable (?:mail )?domain",
            r"host unknown",
            r"illegal (?:host|domain)",
            r"(?:couldn't|could not|can't|cannot) find (?:a |any )?mail exchanger",
            r"(?:unable to|couldn't|could not|can't|cannot) find (?:the |an? |any )?mx\b",
            r"unknown domain",
            r"domain is not (?:valid|hosted)",
            r"invalid domain",
            r"no mx",
            r"nxdomain",
            r"mx (?:record )?not found",
            r"bad destination (?:mailbox address|host)",
            r"mx records point to non-existent hosts",  # Exim
            r"all relevant mx records point",  # Exim
        ],
    ),
    (
        Reason.NOT_ACCEPTED,
        [
            r"does not accept (?:e-?)?mail",
            r"null mx",
            r"not accept(?:ing)? mail",
            r"no smtp service",
        ],
    ),
    (
        Reason.USER_UNKNOWN,
        [
            r"user(?:name)? (?:is )?unknown",
            r"unknown (?:user|recipient|local[- ]part|address|mailbox|account|alias)",
            r"no such (?:user|mailbox|recipient|address|account|local user|person)",
            r"(?:user|mailbox|recipient|address|account|addressee)(?: name)? "
            r"(?:does not|doesn't|did not) exist",
            r"(?:user|mailbox|recipient|address|account)(?: name)? (?:not found|unavailable|"
            r"not exist|invalid|is invalid|not valid|unknown)",
            r"(?:invalid|bad|unknown) (?:recipient|mailbox|user|address)",
            r"not (?:a )?(?:valid|known) (?:user|mailbox|recipient)",
            r"no mailbox",
            r"mailbox not (?:found|available)",
            r"recipient not found",
            r"does(?: not|n't) have an? [\w.-]{0,40} ?account",  # Yahoo, AOL
            r"unknown or illegal alias",  # Sun Messaging Server
            r"not listed in",
            r"no account",
            r"is not a valid",
            r"undeliverable address",
            r"couldn't be found|could not be found",
            r"not our customer",
            r"no valid recipients",
            r"nonexistent|non-existent",
            r"no such",
            r"unrouteable address",  # Exim: no router accepted the address
            r"invalid final delivery userid",
            r"(?:recipient|user) name is not recognized",
            r"adresse (?:d au moins un )?destinataire invalide",  # La Poste, Orange
            r"destinataire inconnu|utilisateur inconnu|adresse inexistante",
            r"unbekannt(?:er)? (?:empf[aä]nger|benutzer)|empf[aä]nger unbekannt",
            # Nothing but "the recipient address is refused": the address is the reason.
            r"recipient address rejected\.?\s*(?:$|\()",
        ],
    ),
    (
        Reason.EXPIRED,
        [
            r"retry time(?:out)? (?:not reached|exceeded)",
            r"timed? ?out",
            r"could not be delivered (?:with|within)",
            r"delivery time expired",
            r"message expired",
            r"(?:giving|given|gave) up",
            r"too long",
            r"undeliverable for",
            r"has been delayed",
            r"still undelivered",
            r"(?:for|after) \d+ (?:days|hours)",
            r"cannot send message for \d+",  # Sendmail
        ],
    ),
    (
        Reason.NETWORK_ERROR,
        [
            r"connection (?:refused|reset|timed out|closed|lost)",
            r"network",
            r"could not connect",
            r"unable to connect",
            r"no route",
            r"lost connection",
            r"connect to \S+ failed",
            r"\bdns\b",
            r"temporary lookup failure",
            r"unreachable",
        ],
    ),
    (
        Reason.SYSTEM_ERROR,
        [
            r"system error",
            r"internal error",
            r"local error",
            r"server error",
            r"resources",
            r"mail loop",
            r"loops? back",
            r"too many hops",
            r"routing loop",
            r"system config",
        ],
    ),
]
TEXT_RES: list[tuple[str, re.Pattern]] = [
    (reason, re.compile("|".join(patterns), re.I)) for reason, patterns in TEXT_PATTERNS
]

# Wordings only a recipient's own server produces when it looked the address up and
# found nothing (directory servers, delivery agents, providers): proof of "user unknown"
# where a generic status (5.0.0, 5.5.0, 5.2.1, 5.4.4, a bare 550) gives none. Sendmail's
# "User unknown" and a bare "No such user" are not here: content filters answer a
# message they refuse after DATA with those very words.
ADDRESS_LOOKUP_RE = re.compile(
    "|".join(
        [
            DIRECTORY_ACCESS_DENIED,
            r"recipient name is not recognized",  # Exchange
            r"mail\.local: unknown user",
            r"invalid final delivery userid",  # IMail
            r"not listed in (?:the )?(?:domino directory|public name (?:&|and) address book|"
            r"address book|directory)",  # Domino
            r"address couldn't be found",
            r"no valid recipients for this",
            r"\bno mailbox here by that name\b",  # qmail
            r"delivery error: dd this user doesn't have",  # Yahoo's 554
            r"mailbox unavailable \(-?\d+:",  # Hotmail/Outlook.com's coded 550
            r"\binvalid recipient\b",  # MessageLabs, La Poste, Orange
            r"adresse (?:d au moins un )?destinataire invalide",  # La Poste, Orange
            r"account that you tried to reach (?:does not exist|is disabled)",  # Google
            r"unknown or illegal alias",  # Sun Messaging Server
            r"(?:user|mailbox|account)(?: name)? (?:does not|doesn't) exist",
            r"\b(?:user|mailbox) not found\b",  # AOL's "MAILBOX NOT FOUND", GMX
            r"unrouteable address",  # Exim: no router accepted the address
            r"mailbox disabled, not accepting",  # Sun Messaging Server
            r"user unknown in (?:local recipient|virtual (?:mailbox|alias)|relay recipient)",
            r"bounce-?category:\s*(?:bad-mailbox|inactive-mailbox|bad-domain)",  # PowerMTA
        ]
    ),
    re.I,
)
# Wordings that say the same but which filters borrow too: proof only with an enhanced
# status from the remote server (Outlook's 5.5.0, GMX's 5.1.1), not a bare 550.
PROVIDER_LOOKUP_RE = re.compile(
    "|".join(
        [
            r"requested action not taken: mailbox unavailable",  # Outlook/Hotmail, GMX
            r"\bmailbox unavailable\b",
            r"does(?: not|n't) have an? [\w.-]{0,40} ?account",  # Yahoo, AOL
            r"\brecipient not found\b",
            r"\bno such (?:user|mailbox|recipient)\b",
            r"\bunknown user\b",  # IMail, McAfee, MDaemon, Kerio
        ]
    ),
    re.I,
)

# PowerMTA writes its own bounce category into DSNs and accounting records.
POWERMTA_CATEGORIES: dict[str, str] = {
    "bad-mailbox": Reason.USER_UNKNOWN,
    "inactive-mailbox": Reason.MAILBOX_DISABLED,
    "bad-domain": Reason.HOST_UNKNOWN,
    "quota-issues": Reason.MAILBOX_FULL,
    "message-expired": Reason.EXPIRED,
    "no-answer-from-host": Reason.NETWORK_ERROR,
    "routing-errors": Reason.NETWORK_ERROR,
    "bad-connection": Reason.NETWORK_ERROR,
    "spam-related": Reason.CONTENT_REJECTED,
    "content-related": Reason.CONTENT_REJECTED,
    "virus-related": Reason.CONTENT_REJECTED,
    "policy-related": Reason.POLICY,
    "relaying-issues": Reason.POLICY,
    "invalid-sender": Reason.POLICY,
    "message-too-large": Reason.MESSAGE_TOO_BIG,
    "protocol-errors": Reason.SYSTEM_ERROR,
}
POWERMTA_CATEGORY_RE = re.compile(r"bounce-?category:\s*([a-z-]+)", re.I)

URL_RE = re.compile(r"https?://\S+")
EMAIL_RE = re.compile(r"[^\s<>@\"']{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,10}")


def reason_from_text(text: str) -> str | None:
    text = _without_addresses(text)
    for reason, pattern in TEXT_RES:
        if pattern.search(text):
            return reason
    category = POWERMTA_CATEGORY_RE.search(text)
    if category:
        return POWERMTA_CATEGORIES.get(category.group(1).lower())
    return None


def is_address_lookup(text: str, status: str = "") -> bool:
    """The recipient's server says it looked the address up and has no such account."""
    text = _without_addresses(text)
    if ADDRESS_LOOKUP_RE.search(text):
        return True
    given = status.startswith("5") and not status.endswith(".0.0")
    return given and bool(PROVIDER_LOOKUP_RE.search(text))


def _without_addresses(text: str) -> str:
    # Local parts like "spam-trap@" or domains like "blocked.example" must not trigger phrases.
    return " ".join(EMAIL_RE.sub(" ", URL_RE.sub(" ", text or "")).split())


# RFC 7504: 521 and 556 mean the host does not accept mail at all.
NO_MAIL_REPLY_RE = re.compile(r"(?<![\d.])(?:521|556)[ -]")


def reason_of(status: str, text: str) -> str:
    """The cause alone: decisive status subjects, then the text, then the status."""
    text_reason = reason_from_text(text)
    if not text_reason and NO_MAIL_REPLY_RE.search(text or ""):
        return Reason.NOT_ACCEPTED
    if status.partition(".")[2] in DECISIVE_STATUSES:
        return reason_from_status(status)
    if text_reason:
        return text_reason
    return reason_from_status(status) if status else Reason.UNDEFINED


def reason_for(
    status: str, text: str, stage: str = "", *, permanent: bool | None = None
) -> Judgement:
    """The reason and verdict for one recipient's failure.

    `stage` is the SMTP command the refusal answered ("rcpt", "data" or unknown "");
    `permanent` overrides the status class (a DSN's Action, a provider's flag).
    """
    status = status or status_in(text)
    if status.startswith("2"):
        status = ""  # a success code quoted from the transcript says nothing of the failure
    reason = reason_of(status, text)
    if permanent is None:
        permanent = not status.startswith("4")
    if not permanent:
        return Judgement(reason, Verdict.SOFT, False)
    if reason not in HARD_REASONS:
        return Judgement(reason, Verdict.SOFT, False)
    if status.startswith(ADDRESS_STATUS_PREFIXES):
        return Judgement(reason, Verdict.HARD, True)
    if stage == "data" and not ADDRESS_LOOKUP_RE.search(_without_addresses(text)):
        # Refused after the message was seen: a filter, whatever words it used (but a
        # directory's own wording is an RCPT reply that a PIPELINING client read late).
        return Judgement(Reason.CONTENT_REJECTED, Verdict.SOFT, False)
    proven = stage == "rcpt" or is_address_lookup(text, status)
    if reason == Reason.USER_UNKNOWN and not proven:
        return Judgement(Reason.CONTENT_REJECTED, Verdict.SOFT, False)
    return Judgement(reason, Verdict.HARD, True)
