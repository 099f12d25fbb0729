"""The mass email page: progress bar, last errors and the sending controls in one place."""

import pytest
from django.urls import reverse

from massmail.dashboard import progress_of, progress_segments
from massmail.models import DomainThrottle
from massmail.sending import tick
from tests.fixtures.sending import make_queued_mass_email

pytestmark = pytest.mark.django_db


def test_progress_bar_and_last_errors_after_a_portion(
    admin_client, smtp_settings, smtp_sink, outbound_unlimited
):
    mass_email = make_queued_mass_email(
        addresses=["a@example.com", "b@example.com", "c@example.com", "nouser@example.com"]
    )
    tick()
    segments = {s.key: (s.count, s.percent) for s in progress_segments(progress_of(mass_email))}
    assert segments["sent"] == (3, 75.0) and segments["failed"] == (1, 25.0)
    assert segments["pending"] == (0, 0.0)

    page = admin_client.get(reverse("admin:massmail_massemail_change", args=[mass_email.pk]))
    html = page.content.decode()
    assert 'class="seg-sent" style="width: 75.00%"' in html
    assert 'class="seg-failed" style="width: 25.00%"' in html
    assert 'id="last-errors"' in html and "nouser@example.com" in html and "5.1.1" in html
    # Send Test and Preview sit beside pause/resume/cancel in the page's tools.
    assert reverse("admin:massmail_massemail_send_test", args=[mass_email.pk]) in html
    assert reverse("admin:massmail_massemail_preview", args=[mass_email.pk]) in html


def test_pending_queue_shows_the_next_portion(admin_client, outbound_unlimited):
    mass_email = make_queued_mass_email(addresses=["a@example.com"])
    html = admin_client.get(
        reverse("admin:massmail_massemail_change", args=[mass_email.pk])
    ).content.decode()
    assert 'class="seg-pending" style="width: 100.00%"' in html
    shown = progress_of(mass_email).next_portion_at
    assert (shown is None) == ('id="next-portion"' not in html)
    assert "Pause" in html and "Cancel sending" in html


def test_the_page_says_why_items_wait(admin_client, smtp_settings, smtp_sink, outbound_unlimited):
    DomainThrottle.objects.create(domain="capped.test", per_hour=1)
    mass_email = make_queued_mass_email(
        addresses=["slow@example.com"], domains={"paused.test": 2, "capped.test": 3}
    )
    smtp_sink.refuse["@paused.test"] = "421 4.7.0 Come back later"
    smtp_sink.refuse["slow@example.com"] = "452 4.2.2 Mailbox full"
    tick()
    url = reverse("admin:massmail_massemail_change", args=[mass_email.pk])
    html = admin_client.get(url).content.decode()
    assert 'id="why-waiting"' in html
    assert 'data-waiting="retrying">Retrying recipients' in html
    assert "Deferred by domain: paused.test asked us to wait" in html
    assert "Paused by throttling: capped.test has reached its cap for now: <strong>2" in html
