"""One reason vocabulary: stored reasons ("userunknown", "user unknown", anymail's
"bounced") are rewritten to bounces.reasons.Reason's names, and verdicts gain "delayed".

The mapping is copied here, not imported, so this migration keeps meaning what it
meant when it was written.
"""

from django.db import migrations, models

# old spelling -> Reason value; anything unknown becomes "undefined".
OLD_NAMES = {
    "userunknown": "user unknown",
    "hostunknown": "host unknown",
    "disabled": "mailbox disabled",
    "suspend": "mailbox disabled",
    "hasmoved": "has moved",
    "notaccept": "not accepted",
    "mailboxfull": "mailbox full",
    "toobig": "message too big",
    "mesgtoobig": "message too big",
    "spam": "content rejected",
    "spamdetected": "content rejected",
    "filtered": "content rejected",
    "contenterror": "content rejected",
    "virusdetected": "content rejected",
    "blocked": "policy",
    "rejected": "policy",
    "policyviolation": "policy",
    "securityerror": "policy",
    "authfailure": "authentication",
    "ratelimit": "rate limited",
    "speeding": "rate limited",
    "toomanyconn": "rate limited",
    "timedout": "expired",
    "systemerror": "system error",
    "systemfull": "system error",
    "network": "network error",
    "networkerror": "network error",
    "onhold": "on hold",
    "abuse": "complaint",
    "feedback": "complaint",
    "invalid": "user unknown",
    "bounced": "undefined",
    "other": "undefined",
}
REASONS = {
    "user unknown", "mailbox disabled", "host unknown", "has moved", "not accepted",
    "mailbox full", "message too big", "content rejected", "policy", "authentication",
    "rate limited", "expired", "delayed", "system error", "network error", "on hold",
    "complaint", "unsubscribed", "vacation", "undefined",
}  # fmt: skip


def normalise_reasons(apps, schema_editor) -> None:
    events = apps.get_model("bounces", "BounceEvent").objects
    stored = events.exclude(reason__in=REASONS).values_list("reason", flat=True).distinct()
    for old in list(stored):
        key = old.strip().lower().replace(" ", "").replace("-", "").replace("_", "")
        new = old.strip().lower() if old.strip().lower() in REASONS else OLD_NAMES.get(key)
        events.filter(reason=old).update(reason=new or "undefined")


class Migration(migrations.Migration):
    dependencies = [
        ("bounces", "0007_encrypt_mailbox_passwords"),
    ]

    operations = [
        migrations.AlterField(
            model_name="bounceevent",
            name="reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("user unknown", "User unknown"),
                    ("mailbox disabled", "Mailbox disabled"),
                    ("host unknown", "Host or domain unknown"),
                    ("has moved", "Address has moved"),
                    ("not accepted", "Domain accepts no mail"),
                    ("mailbox full", "Mailbox full"),
                    ("message too big", "Message too big"),
                    ("content rejected", "Content or spam rejected"),
                    ("policy", "Policy or blocked"),
                    ("authentication", "Authentication (SPF/DKIM/DMARC)"),
                    ("rate limited", "Rate limited"),
                    ("expired", "Expired (retries ran out)"),
                    ("delayed", "Delayed (still retrying)"),
                    ("system error", "System error"),
                    ("network error", "Network error"),
                    ("on hold", "On hold"),
                    ("complaint", "Complaint"),
                    ("unsubscribed", "Unsubscribed"),
                    ("vacation", "Vacation reply"),
                    ("undefined", "Undefined"),
                ],
                max_length=100,
            ),
        ),
        migrations.AlterField(
            model_name="bounceevent",
            name="verdict",
            field=models.CharField(
                choices=[
                    ("hard", "Hard bounce"),
                    ("soft", "Soft bounce"),
                    ("complaint", "Complaint"),
                    ("delayed", "Delayed (still retrying)"),
                ],
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="heldreport",
            name="verdict",
            field=models.CharField(
                choices=[
                    ("hard", "Hard bounce"),
                    ("soft", "Soft bounce"),
                    ("complaint", "Complaint"),
                    ("delayed", "Delayed (still retrying)"),
                ],
                max_length=10,
            ),
        ),
        migrations.RunPython(normalise_reasons, migrations.RunPython.noop),
    ]
