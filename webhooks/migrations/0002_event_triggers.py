"""Triggers that write the outbox: one event row per subscribed endpoint, in the same
transaction (and statement) as the row the event is about.

- campaigns_campaignlogrecord INSERT, action sent / bounced / opted_out
- tracking_hit INSERT, kind open / click (every hit, people's and machines')
- bounces_bounceevent INSERT, verdict complaint
- massmail_massemail UPDATE of status to complete

PostgreSQL gets PL/pgSQL functions; SQLite (development) the same triggers in its
own dialect. Other databases get no events.
"""

from django.db import migrations

COLUMNS = (
    "endpoint_id, uid, event_type, occurred_at, created_at, campaign_id, mass_email_id,"
    " queue_item_id, content_type_id, object_id, email_address, tracking_url_id, hit_id,"
    " is_test, attempts"
)

POSTGRESQL = [
    f"""
CREATE FUNCTION webhooks_record(
    p_type text, p_at timestamptz, p_campaign bigint, p_mass_email bigint, p_item bigint,
    p_ct integer, p_object bigint, p_email text, p_url bigint, p_hit bigint, p_test boolean
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO webhooks_webhookevent ({COLUMNS})
    SELECT e.id, gen_random_uuid(), p_type, p_at, now(), p_campaign, p_mass_email, p_item,
           p_ct, p_object, COALESCE(p_email, ''), p_url, p_hit, COALESCE(p_test, false), 0
    FROM webhooks_webhookendpoint e
    WHERE e.active AND e.event_types @> jsonb_build_array(p_type)
$$
""",
    # The two hot tables get statement-level triggers over the rows inserted (a
    # transition table): one call per statement, however many rows it wrote (the
    # hit writer inserts a batch of concurrent requests' hits at once), and an early
    # return when no endpoint is active (bench/bench_webhook_triggers.py).
    f"""
CREATE FUNCTION webhooks_on_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks_webhookendpoint WHERE active) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhooks_webhookevent ({COLUMNS})
    SELECT e.id, gen_random_uuid(), t.event_type, r.action_date, now(), r.campaign_id,
           r.mass_email_id, r.queue_item_id, r.content_type_id, r.object_id, r.email_address,
           NULL, NULL, r.is_test, 0
    FROM new_log r
    CROSS JOIN LATERAL (
        SELECT CASE WHEN r.action = 'bounced' THEN 'bounced_' || r.bounce_type
                    ELSE r.action END AS event_type
    ) AS t
    JOIN webhooks_webhookendpoint e
      ON e.active AND e.event_types @> jsonb_build_array(t.event_type)
    WHERE r.action IN ('sent', 'bounced', 'opted_out')
    ORDER BY r.id, e.id;
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER webhooks_log AFTER INSERT ON campaigns_campaignlogrecord
REFERENCING NEW TABLE AS new_log
FOR EACH STATEMENT EXECUTE FUNCTION webhooks_on_log()
""",
    f"""
CREATE FUNCTION webhooks_on_hit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks_webhookendpoint WHERE active) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhooks_webhookevent ({COLUMNS})
    SELECT e.id, gen_random_uuid(), t.event_type, h.at, now(), m.campaign_id,
           q.mass_email_id, q.id, q.content_type_id, q.object_id, a.address,
           h.tracking_url_id, h.id, q.is_test, 0
    FROM new_hits h
    CROSS JOIN LATERAL (
        SELECT CASE WHEN h.kind = 'open' THEN 'opened' ELSE 'clicked' END AS event_type
    ) AS t
    JOIN webhooks_webhookendpoint e
      ON e.active AND e.event_types @> jsonb_build_array(t.event_type)
    JOIN massmail_queueitem q ON q.id = h.queue_item_id
    JOIN massmail_massemail m ON m.id = q.mass_email_id
    JOIN targets_emailaddress a ON a.id = q.email_address_id
    WHERE h.kind IN ('open', 'click')
    ORDER BY h.id, e.id;
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER webhooks_hit AFTER INSERT ON tracking_hit
REFERENCING NEW TABLE AS new_hits
FOR EACH STATEMENT EXECUTE FUNCTION webhooks_on_hit()
""",
    """
CREATE FUNCTION webhooks_on_complaint() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM webhooks_record(
        'complained', NEW.occurred_at, m.campaign_id, q.mass_email_id, q.id,
        q.content_type_id, q.object_id, NEW.address, NULL, NULL, q.is_test)
    FROM (SELECT 1) AS one
    LEFT JOIN massmail_queueitem q ON q.id = NEW.queue_item_id
    LEFT JOIN massmail_massemail m ON m.id = q.mass_email_id;
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER webhooks_complaint AFTER INSERT ON bounces_bounceevent
FOR EACH ROW WHEN (NEW.verdict = 'complaint')
EXECUTE FUNCTION webhooks_on_complaint()
""",
    """
CREATE FUNCTION webhooks_on_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM webhooks_record(
        'mass_email_finished', now(), NEW.campaign_id, NEW.id, NULL, NULL, NULL, '',
        NULL, NULL, false);
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER webhooks_finished AFTER UPDATE OF status ON massmail_massemail
FOR EACH ROW WHEN (NEW.status = 'complete' AND OLD.status IS DISTINCT FROM 'complete')
EXECUTE FUNCTION webhooks_on_finished()
""",
]

POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS webhooks_log ON campaigns_campaignlogrecord",
    "DROP TRIGGER IF EXISTS webhooks_hit ON tracking_hit",
    "DROP TRIGGER IF EXISTS webhooks_complaint ON bounces_bounceevent",
    "DROP TRIGGER IF EXISTS webhooks_finished ON massmail_massemail",
    "DROP FUNCTION IF EXISTS webhooks_on_log(), webhooks_on_hit(), webhooks_on_complaint(),"
    " webhooks_on_finished()",
    "DROP FUNCTION IF EXISTS webhooks_record(text, timestamptz, bigint, bigint, bigint,"
    " integer, bigint, text, bigint, bigint, boolean)",
]


def _sqlite_insert(event_type: str, values: str, source: str = "") -> str:
    """The outbox INSERT of a SQLite trigger: `values` lists the columns after the type."""
    return f"""
    INSERT INTO webhooks_webhookevent ({COLUMNS})
    SELECT e.id, lower(hex(randomblob(16))), {event_type}, {values}, 0
    FROM webhooks_webhookendpoint e {source}
    WHERE e.active AND EXISTS (
        SELECT 1 FROM json_each(e.event_types) AS t WHERE t.value = {event_type});
"""


NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"

SQLITE = [
    f"""
CREATE TRIGGER webhooks_log AFTER INSERT ON campaigns_campaignlogrecord
FOR EACH ROW WHEN NEW.action IN ('sent', 'bounced', 'opted_out')
BEGIN {
        _sqlite_insert(
            "(CASE WHEN NEW.action = 'bounced' THEN 'bounced_' || NEW.bounce_type"
            " ELSE NEW.action END)",
            f"NEW.action_date, {NOW}, NEW.campaign_id, NEW.mass_email_id, NEW.queue_item_id,"
            " NEW.content_type_id, NEW.object_id, NEW.email_address, NULL, NULL, NEW.is_test",
        )
    } END
""",
    f"""
CREATE TRIGGER webhooks_hit AFTER INSERT ON tracking_hit
FOR EACH ROW WHEN NEW.kind IN ('open', 'click')
BEGIN {
        _sqlite_insert(
            "(CASE WHEN NEW.kind = 'open' THEN 'opened' ELSE 'clicked' END)",
            f"NEW.at, {NOW}, m.campaign_id, q.mass_email_id, q.id, q.content_type_id,"
            " q.object_id, a.address, NEW.tracking_url_id, NEW.id, q.is_test",
            "JOIN massmail_queueitem q ON q.id = NEW.queue_item_id"
            " JOIN massmail_massemail m ON m.id = q.mass_email_id"
            " JOIN targets_emailaddress a ON a.id = q.email_address_id",
        )
    } END
""",
    f"""
CREATE TRIGGER webhooks_complaint AFTER INSERT ON bounces_bounceevent
FOR EACH ROW WHEN NEW.verdict = 'complaint'
BEGIN {
        _sqlite_insert(
            "'complained'",
            f"NEW.occurred_at, {NOW}, m.campaign_id, q.mass_email_id, q.id, q.content_type_id,"
            " q.object_id, NEW.address, NULL, NULL, COALESCE(q.is_test, 0)",
            "LEFT JOIN massmail_queueitem q ON q.id = NEW.queue_item_id"
            " LEFT JOIN massmail_massemail m ON m.id = q.mass_email_id",
        )
    } END
""",
    f"""
CREATE TRIGGER webhooks_finished AFTER UPDATE OF status ON massmail_massemail
FOR EACH ROW WHEN NEW.status = 'complete' AND OLD.status IS NOT 'complete'
BEGIN {
        _sqlite_insert(
            "'mass_email_finished'",
            f"{NOW}, {NOW}, NEW.campaign_id, NEW.id, NULL, NULL, NULL, '', NULL, NULL, 0",
        )
    } END
""",
]

SQLITE_REVERSE = [
    f"DROP TRIGGER IF EXISTS {name}"
    for name in ("webhooks_log", "webhooks_hit", "webhooks_complaint", "webhooks_finished")
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor, [])
        with schema_editor.connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)  # no parameters: '%' in the SQL stays as it is

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_outbox"),
        ("bounces", "0004_poll_beat_schedule"),
        ("targets", "0004_discard_uploads_schedule"),
    ]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRESQL, "sqlite": SQLITE}),
            _run({"postgresql": POSTGRESQL_REVERSE, "sqlite": SQLITE_REVERSE}),
        )
    ]
