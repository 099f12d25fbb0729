"""The "subscribed" event: a trigger on a sign-up turning Confirmed records one event per
subscribed endpoint, in the transaction of the confirmation (subscriptions.signup.confirm:
its first statement claims the sign-up, then the person joins the lists; a rollback
takes the event with it). The lists are the form's, as the confirmation joins them.

Why the sign-up and not the consent record: a confirmation that brings back an
opted-out person is recorded as a re-subscription, which the unsubscribe page also
writes; the sign-up's pending -> confirmed claim happens once per confirmed sign-up.
"""

from importlib import import_module

from django.db import migrations, models
import django.db.models.deletion

events = import_module("webhooks.migrations.0002_event_triggers")

INSERT = f"INSERT INTO webhooks_webhookevent ({events.COLUMNS}, subscription_form_id, target_lists)"

POSTGRESQL = [
    f"""
CREATE FUNCTION webhooks_on_subscribed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {INSERT}
    SELECT e.id, gen_random_uuid(), 'subscribed', COALESCE(NEW.confirmed_at, now()), now(),
           NULL, NULL, NULL, NULL, NULL, NEW.address, NULL, NULL, false, 0, NEW.form_id,
           (SELECT COALESCE(jsonb_agg(jsonb_build_object('id', l.id, 'name', l.name)
                                      ORDER BY l.id), '[]'::jsonb)
            FROM subscriptions_subscriptionform_target_lists m
            JOIN targets_targetlist l ON l.id = m.targetlist_id
            WHERE m.subscriptionform_id = NEW.form_id)
    FROM webhooks_webhookendpoint e
    WHERE e.active AND e.event_types @> '["subscribed"]'::jsonb
    ORDER BY e.id;
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER webhooks_subscribed AFTER UPDATE OF status ON subscriptions_signup
FOR EACH ROW WHEN (NEW.status = 'confirmed' AND OLD.status IS DISTINCT FROM 'confirmed')
EXECUTE FUNCTION webhooks_on_subscribed()
""",
]

POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS webhooks_subscribed ON subscriptions_signup",
    "DROP FUNCTION IF EXISTS webhooks_on_subscribed()",
]

SQLITE = [
    f"""
CREATE TRIGGER webhooks_subscribed AFTER UPDATE OF status ON subscriptions_signup
FOR EACH ROW WHEN NEW.status = 'confirmed' AND OLD.status IS NOT 'confirmed'
BEGIN
    {INSERT}
    SELECT e.id, lower(hex(randomblob(16))), 'subscribed', COALESCE(NEW.confirmed_at, {events.NOW}),
           {events.NOW}, NULL, NULL, NULL, NULL, NULL, NEW.address, NULL, NULL, 0, 0, NEW.form_id,
           (SELECT json_group_array(json_object('id', l.id, 'name', l.name))
            FROM (SELECT l.id, l.name FROM subscriptions_subscriptionform_target_lists m
                  JOIN targets_targetlist l ON l.id = m.targetlist_id
                  WHERE m.subscriptionform_id = NEW.form_id ORDER BY l.id) AS l)
    FROM webhooks_webhookendpoint e
    WHERE e.active AND EXISTS (
        SELECT 1 FROM json_each(e.event_types) AS t WHERE t.value = 'subscribed');
END
""",
]

SQLITE_REVERSE = ["DROP TRIGGER IF EXISTS webhooks_subscribed"]


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0002_expire_sign_ups_schedule"),
        ("targets", "0004_discard_uploads_schedule"),
        ("webhooks", "0003_deliver_webhooks_schedule"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookevent",
            name="subscription_form",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="subscriptions.subscriptionform",
            ),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="target_lists",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="webhookevent",
            name="event_type",
            field=models.CharField(
                choices=[
                    ("sent", "Sent"),
                    ("opened", "Opened"),
                    ("clicked", "Clicked"),
                    ("bounced_hard", "Bounced (hard)"),
                    ("bounced_soft", "Bounced (soft)"),
                    ("opted_out", "Opted out"),
                    ("complained", "Complained"),
                    ("mass_email_finished", "Mass email finished"),
                    ("subscribed", "Subscribed (sign-up confirmed)"),
                ],
                max_length=30,
            ),
        ),
        migrations.RunPython(
            events._run({"postgresql": POSTGRESQL, "sqlite": SQLITE}),
            events._run({"postgresql": POSTGRESQL_REVERSE, "sqlite": SQLITE_REVERSE}),
        ),
    ]
