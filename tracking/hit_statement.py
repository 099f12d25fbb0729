"""PostgreSQL: the hits of concurrent requests written together, in one statement.

The hits of concurrent requests in one web process are written together (group
commit, tracking/group_commit.py): one statement per batch reads the queue items
and tracking URLs, classifies (the rules of tracking/rules.py, in SQL), inserts
the hits, reclassifies bursts and inserts the log rows with ON CONFLICT DO
NOTHING, in one round trip and one commit, and no request is answered before its
hit is committed. The statement runs prepared on a raw psycopg cursor.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DataError, InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from campaigns.models import CampaignLogRecord
from massmail.models import MassEmail, OutboundSettings, QueueItem
from targets.models import EmailAddress
from tracking.group_commit import GroupCommit
from tracking.models import Hit, TrackingUrl
from tracking.rules import (
    BURST_SECONDS,
    PROMPT_SECONDS,
    REASON_LINKS_BURST,
    REASON_PROMPT,
    REASON_TRAP,
    REASON_TRAP_BURST,
    Destination,
    Visit,
    truncate_ip,
)

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


def record(
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
