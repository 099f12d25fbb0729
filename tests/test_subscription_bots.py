"""Bots posting the form: the rate limits and the honeypot hold, checked at a real SMTP server."""

import pytest

from subscriptions import signup
from subscriptions.models import SignUp
from targets.models import EmailAddress, Lead, TargetListMember
from tests.subscription_factories import make_form, post_form

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_a_bot_posting_1000_times_from_one_ip_gets_only_the_limit(client, smtp_settings, smtp_sink):
    form = make_form()
    answers = [
        post_form(client, form, ip="192.0.2.50", email=f"victim{n}@example.com").status_code
        for n in range(1000)
    ]
    limit = signup.LIMIT_PER_CLIENT
    assert answers[:limit] == [303] * limit
    assert set(answers[limit:]) == {429}
    assert len(smtp_sink.received) == limit, "no confirmation beyond the limit"
    assert sorted(smtp_sink.recipients()) == sorted(f"victim{n}@example.com" for n in range(limit))
    assert SignUp.objects.count() == limit
    assert not (Lead.objects.exists() or TargetListMember.objects.exists())
    assert not EmailAddress.objects.exists()
    # Another client is not held back by the bot.
    assert post_form(client, form, ip="192.0.2.51", email="ann@example.com").status_code == 303
    assert len(smtp_sink.received) == limit + 1


def test_one_address_is_not_flooded_from_many_ips(client, smtp_settings, smtp_sink):
    form = make_form()
    for n in range(20):
        post_form(client, form, ip=f"198.51.100.{n + 1}", email="ann@example.com")
    assert smtp_sink.recipients() == ["ann@example.com"] * signup.LIMIT_PER_ADDRESS


def test_forms_with_the_honeypot_filled_send_nothing(client, smtp_settings, smtp_sink):
    form = make_form()
    for n in range(200):
        response = post_form(
            client, form, ip=f"10.0.{n // 250}.{n % 250}", email=f"x{n}@example.com", website="x"
        )
        assert response.status_code == 303
    assert smtp_sink.received == [] and not SignUp.objects.exists()
    assert not (Lead.objects.exists() or TargetListMember.objects.exists())


def test_the_window_passes_and_the_client_may_sign_up_again(client, smtp_settings, smtp_sink):
    from tests.subscription_factories import later

    form = make_form()
    for n in range(signup.LIMIT_PER_CLIENT + 3):
        post_form(client, form, ip="192.0.2.60", email=f"p{n}@example.com")
    assert len(smtp_sink.received) == signup.LIMIT_PER_CLIENT
    with later(hours=1.01):
        assert post_form(client, form, ip="192.0.2.60", email="new@example.com").status_code == 303
    assert len(smtp_sink.received) == signup.LIMIT_PER_CLIENT + 1
