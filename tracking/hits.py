"""Recording hits on public links, and telling people from machines.

Every request on a tracked link, the open pixel, the hidden trap link or the
unsubscribe page is kept as a raw `Hit` (time, method, user agent, IP prefix)
and classified: a HEAD request, a known scanner or image-proxy user agent, a
hit within seconds of sending, every link of a message hit in one burst, or a
hit on the hidden link no person sees make it a machine hit. Campaign log
entries (Clicked, Opened) are written for every hit, once per item (and URL),
as the reference does; statistics that count people look at the hits.

On PostgreSQL the hits of concurrent requests in one web process are written
together (group commit, tracking/group_commit.py): one statement per batch
reads the queue items and tracking URLs, classifies, inserts the hits,
reclassifies bursts and inserts the log rows with ON CONFLICT DO NOTHING, in
one round trip and one commit, and no request is answered before its hit is
committed. Other databases take the portable path below, the same rules
through the ORM in one transaction.

Hits of one message that arrive in the same few milliseconds do not see each
other (each statement reads its own snapshot, and hits of one batch are written
together), so a scanner fetching every link at once with a browser's user
agent can leave its hits "person". `reclassify_bursts()`, run every minute by
Celery beat, looks at the recent hits as a whole and applies the burst rules
to them afterwards.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    DataError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Q
from django.http import HttpRequest
from django.utils import timezone

from campaigns.models import CampaignLogRecord
from massmail.models import MassEmail, OutboundSettings, QueueItem
from targets.models import EmailAddress
from tracking.group_commit import GroupCommit
from tracking.models import Hit, TrackingUrl

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


def record_hit(
    kind: str, uid: uuid.UUID, visit: Visit, tracking_url_id: int | None = None
) -> Destination | None:
    """Keep the hit and its log entries; None when the item (or its link) does not exist.

    A tracking URL of another campaign than the queue item's is "not found" too;
    a shared one (no campaign) is found from every campaign.
    """
    if kind == Hit.Kind.CLICK and tracking_url_id is None:
        raise ValueError("A click needs its tracking URL.")
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        return _record_postgresql(kind, uid, visit, tracking_url_id)
    return _record_portable(kind, uid, visit, tracking_url_id)


# --- bursts seen afterwards ---

# How far back the minutely job looks: hits of a burst are seconds apart, so a
# few runs' worth covers a job that missed a beat.
BURST_LOOKBACK = timedelta(minutes=10)


@dataclass(frozen=True)
class _SeenHit:
    id: int
    queue_item_id: int
    kind: str
    tracking_url_id: int | None
    at: datetime
    is_machine: bool


def reclassify_bursts(now: datetime | None = None, lookback: timedelta = BURST_LOOKBACK) -> int:
    """Mark as machine the person hits that belong to a burst; how many changed.

    The same rule as when a hit arrives, applied to all recent hits together: a
    hit is in a burst when a hit of the same message within the next BURST_SECONDS
    sees, over the BURST_SECONDS before it, the hidden link or two different links.
    Only messages with such a pattern are read hit by hit.
    """
    since = (now or timezone.now()) - lookback
    recent = Hit.objects.filter(at__gte=since)
    # No index on `at` (each index is a write on the hottest insert): bound the
    # scan by id instead, reading back from the newest hit to the lookback.
    before = Hit.objects.filter(at__lt=since).order_by("-id").values_list("id", flat=True)
    if (bound := before.first()) is not None:
        recent = recent.filter(id__gt=bound)
    candidates = (
        recent.values("queue_item_id")
        .annotate(
            links=Count("tracking_url", distinct=True, filter=Q(kind=Hit.Kind.CLICK)),
            traps=Count("id", filter=Q(kind=Hit.Kind.TRAP)),
            people=Count("id", filter=Q(is_machine=False)),
        )
        .filter(Q(links__gte=2) | Q(traps__gte=1), people__gte=1)
        .values_list("queue_item_id", flat=True)
    )
    rows = (
        Hit.objects.filter(
            queue_item_id__in=list(candidates),
            at__gte=since - timedelta(seconds=BURST_SECONDS),
        )
        .order_by("queue_item_id", "at", "id")
        .values_list("id", "queue_item_id", "kind", "tracking_url_id", "at", "is_machine")
    )
    marks: dict[int, str] = {}
    for _, hits in itertools.groupby(
        (_SeenHit(*row) for row in rows), key=lambda hit: hit.queue_item_id
    ):
        marks.update(_burst_marks(list(hits)))
    changed = 0
    for reason in (REASON_TRAP_BURST, REASON_LINKS_BURST):
        ids = [hit_id for hit_id, marked in marks.items() if marked == reason]
        changed += Hit.objects.filter(id__in=ids, is_machine=False).update(
            is_machine=True, machine_reason=reason
        )
    return changed


def _burst_marks(hits: list[_SeenHit]) -> dict[int, str]:
    """Person hits of one message (in time order) that a burst makes machine, and why."""
    window = timedelta(seconds=BURST_SECONDS)
    marks: dict[int, str] = {}
    for last in hits:
        seen = [hit for hit in hits if last.at - window <= hit.at <= last.at]
        reason = burst_reason((hit.kind, hit.tracking_url_id) for hit in seen)
        if not reason:
            continue
        for hit in seen:
            if not hit.is_machine and marks.get(hit.id) != REASON_TRAP_BURST:
                marks[hit.id] = reason
    return marks


# --- the rules, for the portable path (the PostgreSQL statement mirrors them) ---


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


def _record_portable(
    kind: str, uid: uuid.UUID, visit: Visit, tracking_url_id: int | None
) -> Destination | None:
    item = (
        QueueItem.objects.filter(uid=uid)
        .select_related("mass_email", "email_address")
        .only(
            "id",
            "is_test",
            "sent_at",
            "content_type_id",
            "object_id",
            "mass_email__campaign_id",
            "email_address__address",
        )
        .first()
    )
    if item is None:
        return None
    destination = Destination()
    if kind == Hit.Kind.CLICK:
        url = (
            TrackingUrl.objects.filter(pk=tracking_url_id)
            .filter(Q(campaign_id=item.mass_email.campaign_id) | Q(campaign_id__isnull=True))
            .first()
        )
        if url is None:
            return None
        destination = Destination(url.url, url.action, url.message)
    options = OutboundSettings.load()
    if kind == Hit.Kind.OPEN and not options.open_tracking:
        return destination
    with transaction.atomic():
        _write_portable(kind, item, visit, tracking_url_id, options)
    return destination


def _write_portable(
    kind: str,
    item: QueueItem,
    visit: Visit,
    tracking_url_id: int | None,
    options: OutboundSettings,
) -> None:
    recent = list(
        Hit.objects.filter(
            queue_item_id=item.pk, at__gte=visit.at - timedelta(seconds=BURST_SECONDS)
        ).values_list("id", "kind", "tracking_url_id")
    )
    verdict = classify(kind, visit, item.sent_at, tracking_url_id, [r[1:] for r in recent])
    Hit.objects.create(
        queue_item_id=item.pk,
        kind=kind,
        tracking_url_id=tracking_url_id,
        at=visit.at,
        method=visit.method[:10],
        user_agent=visit.user_agent,
        ip=truncate_ip(visit.ip) if options.truncate_ip else visit.ip,
        is_machine=bool(verdict.reason),
        machine_reason=verdict.reason,
    )
    if verdict.burst_reason:
        Hit.objects.filter(id__in=[r[0] for r in recent], is_machine=False).update(
            is_machine=True, machine_reason=verdict.burst_reason
        )
    actions = []
    if kind == Hit.Kind.CLICK:
        actions.append(CampaignLogRecord.Action.CLICKED)
    if kind in (Hit.Kind.CLICK, Hit.Kind.OPEN) and options.open_tracking:
        actions.append(CampaignLogRecord.Action.OPENED)
    CampaignLogRecord.objects.write(
        CampaignLogRecord.of_item(
            item,
            action,
            at=visit.at,
            tracking_url_id=tracking_url_id if action == CampaignLogRecord.Action.CLICKED else None,
        )
        for action in actions
    )


# --- PostgreSQL: hits of concurrent requests written together, one statement ---

# Asynchronous commit, opt-in (MASSMAIL_HITS_ASYNC_COMMIT=1; set_config(..., true)
# lasts for this statement's own transaction): the request does not wait for the
# WAL flush. The trade-off: if the PostgreSQL server itself crashes, hits
# acknowledged in the last moments (at most 3 x wal_writer_delay, 600 ms by
# default) are lost; the database stays consistent. Off by default: group
# commit already flushes the WAL once per batch, so bench/bench_endpoints.py
# measured little gain (0.58 of the bare view against 0.53), and a hit answered
# should be a hit kept. Unsubscribes and sending state never commit this way.
#
# The hits come as one JSON array (n = their place in the batch): one parameter
# to send whatever the batch size, and PostgreSQL reads it in one call. Every
# rule is applied per hit exactly as for a hit alone; hits of one batch do not
# see each other, like concurrent statements (reclassify_bursts() settles them).
_HIT_SQL = """
WITH s AS (
    SELECT
        set_config('synchronous_commit',
            CASE WHEN %(async)s::boolean THEN 'off'
                 ELSE current_setting('synchronous_commit') END,
            true) AS commit_mode,
        COALESCE(o.open_tracking, false) AS open_tracking,
        COALESCE(o.truncate_ip, true) AS truncate_ip
    FROM (SELECT 1) AS one LEFT JOIN {settings} o ON o.id = 1
),
v AS (
    SELECT * FROM json_to_recordset(%(hits)s::json) AS v(
        n int, uid uuid, kind text, url_id bigint, at timestamptz, method text,
        user_agent text, ip inet, ip_short inet, agent_reason text)
),
target AS (
    SELECT v.n, v.kind, v.at, v.method, v.user_agent, v.ip, v.ip_short, v.agent_reason,
           q.id, q.is_test, q.sent_at, q.content_type_id, q.object_id, q.mass_email_id,
           m.campaign_id, e.address, t.id AS url_id, t.url, t.action, t.message
    FROM v
    JOIN {item} q ON q.uid = v.uid
    JOIN {mass_email} m ON m.id = q.mass_email_id
    JOIN {address} e ON e.id = q.email_address_id
    LEFT JOIN {url} t ON t.id = v.url_id
        AND (t.campaign_id = m.campaign_id OR t.campaign_id IS NULL)
    WHERE v.url_id IS NULL OR t.id IS NOT NULL
),
recent AS (
    -- Per hit, through the (queue item, at) index. OFFSET 0 keeps the planner from
    -- making it one join, which it would hash over the whole table: it takes the
    -- JSON array for a hundred hits.
    SELECT target.n, h.id, h.kind, h.tracking_url_id
    FROM target, LATERAL (
        SELECT h.id, h.kind, h.tracking_url_id FROM {hit} h
        WHERE h.queue_item_id = target.id
          AND h.at >= target.at - make_interval(secs => {burst_seconds})
        OFFSET 0
    ) AS h
),
verdict AS (
    SELECT target.*, b.burst,
        CASE WHEN target.kind = 'trap' THEN '{r_trap}'
             WHEN target.agent_reason <> '' THEN target.agent_reason
             WHEN b.burst <> '' THEN b.burst
             WHEN target.sent_at IS NOT NULL
                  AND target.at < target.sent_at + make_interval(secs => {prompt_seconds})
                 THEN '{r_prompt}'
             ELSE '' END AS reason
    FROM target, LATERAL (
        SELECT CASE WHEN target.kind = 'trap' OR seen.trap THEN '{r_trap_burst}'
                    WHEN seen.other_links + (target.url_id IS NOT NULL)::int >= 2
                        THEN '{r_links_burst}'
                    ELSE '' END AS burst
        FROM (
            SELECT COALESCE(bool_or(r.kind = 'trap'), false) AS trap,
                   count(DISTINCT r.tracking_url_id) FILTER (
                       WHERE r.kind = 'click'
                         AND r.tracking_url_id <> COALESCE(target.url_id, 0)
                   ) AS other_links
            FROM recent r WHERE r.n = target.n
        ) AS seen
    ) AS b
),
new_hit AS (
    INSERT INTO {hit} (queue_item_id, kind, tracking_url_id, at, method, user_agent, ip,
                       is_machine, machine_reason)
    SELECT t.id, t.kind, t.url_id, t.at, t.method, t.user_agent,
           CASE WHEN s.truncate_ip THEN t.ip_short ELSE t.ip END,
           t.reason <> '', t.reason
    FROM verdict t, s
    WHERE t.kind <> 'open' OR s.open_tracking
    RETURNING id
),
marked AS (
    SELECT DISTINCT ON (r.id) r.id, t.burst
    FROM recent r JOIN verdict t ON t.n = r.n
    WHERE t.burst <> ''
    ORDER BY r.id, t.burst = '{r_trap_burst}' DESC
),
burst AS (
    -- By primary key (= ANY of an array): a join here would be hashed over the table.
    UPDATE {hit} h
    SET is_machine = true, machine_reason = (SELECT burst FROM marked WHERE marked.id = h.id)
    WHERE h.id = ANY (ARRAY(SELECT id FROM marked)) AND NOT h.is_machine
    RETURNING h.id
),
logged AS (
    {log_insert}
    FROM target t, s, (VALUES ('clicked'), ('opened')) AS a(action)
    WHERE (a.action = 'clicked' AND t.kind = 'click')
       OR (a.action = 'opened' AND t.kind IN ('click', 'open') AND s.open_tracking)
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT target.n, target.url, target.action, target.message, s.commit_mode FROM target, s
"""


def _literal(text: str) -> str:
    """A constant of this module, put into the statement as an SQL string's contents."""
    if not re.fullmatch(r"[A-Za-z ]+", text):
        raise ValueError(f"unexpected characters in {text!r}")
    return text


@functools.cache
def _hit_sql() -> str:
    reasons = {
        "r_trap": REASON_TRAP,
        "r_trap_burst": REASON_TRAP_BURST,
        "r_links_burst": REASON_LINKS_BURST,
        "r_prompt": REASON_PROMPT,
    }
    return _HIT_SQL.format(
        settings=OutboundSettings._meta.db_table,
        item=QueueItem._meta.db_table,
        mass_email=MassEmail._meta.db_table,
        address=EmailAddress._meta.db_table,
        url=TrackingUrl._meta.db_table,
        hit=Hit._meta.db_table,
        log_insert=CampaignLogRecord.insert_sql(
            {
                "action": "a.action",
                "action_date": "t.at",
                "campaign_id": "t.campaign_id",
                "mass_email_id": "t.mass_email_id",
                "queue_item_id": "t.id",
                "content_type_id": "t.content_type_id",
                "object_id": "t.object_id",
                "tracking_url_id": "CASE WHEN a.action = 'clicked' THEN t.url_id END",
                "email_template_id": "NULL",
                "email_address": "t.address",
                "bounce_type": "''",
                "is_test": "t.is_test",
            }
        ),
        burst_seconds=int(BURST_SECONDS),
        prompt_seconds=int(PROMPT_SECONDS),
        **{name: _literal(text) for name, text in reasons.items()},
    )


@dataclass(frozen=True)
class _PendingHit:
    kind: str
    uid: uuid.UUID
    visit: Visit
    tracking_url_id: int | None

    def as_json(self, n: int) -> dict:
        visit = self.visit
        return {
            "n": n,
            "uid": str(self.uid),
            "kind": str(self.kind),
            "url_id": self.tracking_url_id,
            "at": visit.at.isoformat(),
            "method": visit.method[:10],
            # PostgreSQL text cannot hold NUL; one such agent must not fail a batch.
            "user_agent": visit.user_agent.replace("\x00", ""),
            "ip": visit.ip,
            "ip_short": truncate_ip(visit.ip),
            "agent_reason": visit.agent_reason,
        }


def _write_hits(pending: Sequence[_PendingHit]) -> list[Destination | None | Exception]:
    """Write a batch in one statement on this thread's connection; one outcome per hit.

    If PostgreSQL refuses the batch for what one hit holds, each hit is written
    alone, so only that hit's request fails.
    """
    database = connections[DEFAULT_DB_ALIAS]
    payload = json.dumps([hit.as_json(n) for n, hit in enumerate(pending)])
    params = {
        # Inside someone's transaction the setting would last for all of it: not there.
        "async": bool(getattr(settings, "MASSMAIL_HITS_ASYNC_COMMIT", False))
        and not database.in_atomic_block,
        "hits": payload,
    }
    try:
        rows = _execute_prepared(database, params)
    except DataError:
        if len(pending) == 1 or database.in_atomic_block:
            raise
        return [_outcome_alone(hit) for hit in pending]
    found = {
        n: Destination(url or "", action or "", message or "")
        for n, url, action, message, _ in rows
    }
    return [found.get(n) for n in range(len(pending))]


def _outcome_alone(hit: _PendingHit) -> Destination | None | Exception:
    try:
        return _write_hits([hit])[0]
    except DataError as error:
        return error


_group_commit: GroupCommit[_PendingHit, Destination | None] = GroupCommit(_write_hits)


def _record_postgresql(
    kind: str, uid: uuid.UUID, visit: Visit, tracking_url_id: int | None
) -> Destination | None:
    hit = _PendingHit(kind, uid, visit, tracking_url_id)
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        # Inside the caller's transaction the hit must be part of it (and roll back
        # with it); other threads' hits must never be. Alone, a refused hit raises.
        return _write_hits([hit])[0]
    return _group_commit.submit(hit)


def _execute_prepared(database: BaseDatabaseWrapper, params: dict) -> list[tuple]:
    """Run the statement, prepared, on Django's persistent connection, in one round trip.

    Planning this statement costs more than executing it: prepared once per
    connection, PostgreSQL plans it a few times and then reuses a generic plan.
    Django's own cursors bind parameters client-side and never prepare, so this
    uses a server-side binding psycopg cursor on the same connection (binary
    parameters, protocol-level prepared statement: PgBouncer >= 1.21 supports
    them with max_prepared_statements; or set MASSMAIL_HITS_PREPARED = False).

    Django's per-request health check (a SELECT 1 when CONN_HEALTH_CHECKS is on)
    is skipped for this statement; a connection found dead is replaced and the
    statement tried once more. A failed statement committed nothing, so the
    retry cannot log twice.
    """
    if database.connection is not None and not database.in_atomic_block:
        database.health_check_done = True
    try:
        return _execute_once(database, params)
    except (InterfaceError, OperationalError):
        if database.in_atomic_block:
            raise
        database.close()
        return _execute_once(database, params)


# psycopg prepares a statement automatically once it ran this many times; Django
# turns that off (None). Only statements asked for with prepare=True are wanted.
_ONLY_WHEN_ASKED = 2**31 - 1


def _execute_once(database: BaseDatabaseWrapper, params: dict) -> list[tuple]:
    prepare = bool(getattr(settings, "MASSMAIL_HITS_PREPARED", True))
    database.ensure_connection()
    raw = database.connection
    if prepare and raw.prepare_threshold is None:
        raw.prepare_threshold = _ONLY_WHEN_ASKED
    with database.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        cursor.execute(_hit_sql(), params, prepare=prepare)
        return cursor.fetchall()
