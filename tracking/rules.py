"""Telling people from machines: the rules every hit writer applies.

A HEAD request, a known scanner or image-proxy user agent, a hit within seconds
of sending, every link of a message hit in one burst, or a hit on the hidden
link no person sees make a hit a machine hit. The portable writer
(tracking/hits.py) applies them through `classify()`; the PostgreSQL statement
(tracking/hit_statement.py) mirrors them in SQL with these constants; the
minutely job (tracking/bursts.py) applies `burst_reason()` afterwards.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from tracking.models import Hit

# Security gateways fetch links as the message is delivered; people take longer.
PROMPT_SECONDS = 10
# Hits of one message this close together are one visit: a person does not open
# two different links (or a hidden one) within a few seconds, scanners do.
BURST_SECONDS = 5

REASON_HEAD = "HEAD request"
REASON_NO_AGENT = "no user agent"
REASON_AGENT = "scanner or image proxy user agent"
REASON_PROMPT = "within seconds of sending"
REASON_TRAP = "hidden link"
REASON_TRAP_BURST = "hidden link hit in the same burst"
REASON_LINKS_BURST = "several links in one burst"

# Image proxies (Apple Mail Privacy Protection, Gmail, Yahoo), link scanners of
# security gateways, HTTP libraries, headless browsers and crawlers: lower-case
# fragments of their user agents. Plain substring tests: a regular expression
# alternating over all of them cost ~0.1 ms per hit.
SCANNER_AGENT_PARTS = (
    "googleimageproxy",
    "ggpht.com",
    "yahoomailproxy",
    "ymailproxy",
    "yahoo! slurp",
    "safelinks",
    "microsoft office",
    "ms-office",
    "msoffice",
    "outlook-ios-linkpreview",
    "proofpoint",
    "mimecast",
    "barracuda",
    "ironport",
    "cisco",
    "messagelabs",
    "symantec",
    "forcepoint",
    "trendmicro",
    "fireeye",
    "sophos",
    "zscaler",
    "bitdefender",
    "spamtitan",
    "appriver",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "apache-httpclient",
    "libwww",
    "httpclient",
    "node-fetch",
    "axios/",
    "headlesschrome",
    "phantomjs",
    "bot/",
    "crawler",
    "spider",
    "preview",
    "scan",
)
BOT_WORD = re.compile(r"\bbot\b")
# Apple's Mail Privacy Protection proxy sends exactly this, nothing more.
APPLE_PROXY_AGENT = "Mozilla/5.0"


@functools.lru_cache(maxsize=4096)
def is_scanner_agent(user_agent: str) -> bool:
    """Known scanner or image proxy (cached: a few thousand agents make most traffic)."""
    agent = user_agent.strip()
    if agent == APPLE_PROXY_AGENT:
        return True
    lowered = agent.lower()
    return any(part in lowered for part in SCANNER_AGENT_PARTS) or bool(BOT_WORD.search(lowered))


@dataclass(frozen=True)
class Visit:
    """What a request tells about who made it."""

    method: str
    user_agent: str
    ip: str | None
    at: datetime

    @classmethod
    def from_request(cls, request: HttpRequest) -> Visit:
        return cls(
            method=request.method or "GET",
            # META, not request.headers: that builds a dict of every header first.
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:500],
            ip=client_ip(request),
            at=timezone.now(),
        )

    @property
    def agent_reason(self) -> str:
        """The reason the request itself shows a machine, or ''."""
        if self.method == "HEAD":
            return REASON_HEAD
        agent = self.user_agent.strip()
        if not agent:
            return REASON_NO_AGENT
        if is_scanner_agent(agent):
            return REASON_AGENT
        return ""


@dataclass(frozen=True)
class Destination:
    """Where a found link leads (empty for hits that are not clicks)."""

    url: str = ""
    action: str = ""
    message: str = ""


def client_ip(request: HttpRequest) -> str | None:
    # Behind the deployment's proxy the last X-Forwarded-For entry is the one the
    # proxy added; earlier entries are whatever the client claimed.
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and getattr(settings, "USE_X_FORWARDED_HOST", False):
        candidate = forwarded.split(",")[-1].strip()
    else:
        candidate = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def truncate_ip(ip: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network address: enough to see a proxy, not a home."""
    if not ip:
        return None
    if ":" not in ip:  # IPv4 as client_ip() wrote it: four decimal octets
        return ip.rpartition(".")[0] + ".0"
    network = ipaddress.ip_network(f"{ip}/48", strict=False)
    return str(network.network_address)


@dataclass(frozen=True)
class Verdict:
    reason: str
    burst_reason: str  # set: the burst's earlier hits are machine hits too


def classify(
    kind: str,
    visit: Visit,
    sent_at: datetime | None,
    tracking_url_id: int | None,
    recent: list[tuple[str, int | None]],
) -> Verdict:
    """Classify one hit given the (kind, tracking URL) of its message's hits in the burst."""
    burst = burst_reason([*recent, (kind, tracking_url_id)])
    prompt = sent_at is not None and visit.at < sent_at + timedelta(seconds=PROMPT_SECONDS)
    if kind == Hit.Kind.TRAP:
        reason = REASON_TRAP
    else:
        reason = visit.agent_reason or burst or (REASON_PROMPT if prompt else "")
    return Verdict(reason, burst)


def burst_reason(seen: Iterable[tuple[str, int | None]]) -> str:
    """The burst rule over the (kind, tracking URL) of one message's hits in a window."""
    seen = list(seen)
    if any(kind == Hit.Kind.TRAP for kind, _ in seen):
        return REASON_TRAP_BURST
    links = {url for kind, url in seen if kind == Hit.Kind.CLICK and url}
    return REASON_LINKS_BURST if len(links) >= 2 else ""
