"""seed_demo makes a due newsletter; running it twice changes nothing."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from campaigns.models import Campaign, EmailTemplate
from massmail.composition import prepare
from massmail.models import MassEmail
from massmail.presend import presend_warnings
from massmail.queue import build_queue
from massmail.recipients import recipient_contexts
from targets.models import Contact, EmailAddress, Lead, TargetList, TargetListMember
from tracking.models import TrackingUrl

pytestmark = pytest.mark.django_db

MODELS = [
    Contact,
    Lead,
    EmailAddress,
    TargetList,
    TargetListMember,
    Campaign,
    EmailTemplate,
    MassEmail,
    TrackingUrl,
    get_user_model(),
]


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def test_seed_demo_is_idempotent_and_leaves_a_due_newsletter(capsys):
    call_command("seed_demo")
    first = counts()
    call_command("seed_demo")
    assert counts() == first
    mass_email = MassEmail.objects.get()
    assert mass_email.status == MassEmail.Status.PENDING
    assert mass_email.start_at <= timezone.now()
    assert mass_email.campaign.type == Campaign.Type.NEWSLETTER
    assert mass_email.excluding_target_lists.count() == 1
    link = TrackingUrl.objects.get()
    assert link.code in mass_email.email_template.body_html
    # Some records share an address: Jane is a contact and a lead.
    assert (
        Contact.objects.count() + Lead.objects.count()
        > EmailAddress.objects.filter(record_links__content_type__model__in=["contact", "lead"])
        .distinct()
        .count()
    )
    assert "admin / massmail-demo" in capsys.readouterr().out
    assert get_user_model().objects.get(username="admin").check_password("massmail-demo")


def test_the_send_tick_is_due_when_beat_starts():
    """Beat counts a job's first interval from its start; the demo's first send must not
    wait for it (README: within a minute of `python3 dev.py run`)."""
    from django_celery_beat.models import PeriodicTask

    from massmail.schedule import TASK

    call_command("seed_demo")
    task = PeriodicTask.objects.get(task=TASK)
    assert task.schedule.is_due(task.last_run_at).is_due


def test_demo_accounts_get_the_fallbacks_not_empty_values():
    call_command("seed_demo")
    mass_email = MassEmail.objects.get()
    assert [w for w in presend_warnings(mass_email) if w.code == "empty_value"] == []
    build_queue(mass_email.pk)
    items = list(mass_email.queue_items.filter(content_type__model="account"))
    assert items
    prepared = prepare(mass_email)
    contexts = recipient_contexts(items)
    for item in items:
        rendered = prepared.render(item, contexts[item.id])
        assert rendered.subject == "Hello, our spring news"
        assert "Hello there," in rendered.text
