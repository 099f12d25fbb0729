"""A/B tests through the API: made with the admin's own rules, read with their variants'
figures, and the winner picked by hand; the engine then sends the rest."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from massmail.models import MassEmail, QueueItem, SplitTest
from massmail.sending import tick
from tests.api_client import make_marketer, token_client
from tests.factories import make_template, make_user
from tests.fixtures.sending import make_queued_mass_email

pytestmark = pytest.mark.django_db
Status = MassEmail.Status


@pytest.fixture
def api():
    return token_client(make_marketer())


def draft(count: int = 50) -> MassEmail:
    return make_queued_mass_email(count, status=Status.DRAFT)


def test_made_read_and_decided_by_hand(api, smtp_settings, smtp_sink, outbound_unlimited):
    parent = draft()
    other = make_template(subject="Other body")
    created = api.post(
        "/api/split-tests/",
        {
            "parent": parent.pk,
            "test_percent": 20,
            "wait": "02:00:00",
            "metric": "opens",
            "variants": [{"subject": "Subject A"}, {"email_template": other.pk}],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    test = SplitTest.objects.get(pk=body["id"])
    assert (body["state"], body["metric"], body["wait"]) == ("waiting", "opens", "02:00:00")
    assert [v["letter"] for v in body["variants"]] == ["A", "B"]
    b = test.variants.get(letter="B").mass_email
    assert b.email_template == other and body["variants"][1]["mass_email"] == b.pk

    assert parent.schedule()
    assert tick().sent == 10  # 20%: 5 each
    read = api.get(f"/api/split-tests/{test.pk}/").json()
    assert read["state"] == "testing"
    assert [(v["letter"], v["sent"], v["opened"]) for v in read["variants"]] == [
        ("A", 5, 0),
        ("B", 5, 0),
    ]
    assert api.post(f"/api/split-tests/{test.pk}/pick/", {"letter": "C"}).status_code == 400
    picked = api.post(f"/api/split-tests/{test.pk}/pick/", {"letter": "b"})
    assert picked.status_code == 200, picked.content
    assert picked.json()["winner"] == "B" and "picked by hand" in picked.json()["decision"]
    again = api.post(f"/api/split-tests/{test.pk}/pick/", {"letter": "A"})
    assert again.status_code == 409 and "only while testing" in again.json()["detail"]
    assert tick().sent == 40
    assert b.queue_items.filter(status=QueueItem.Status.SENT).count() == 45
    recipients = smtp_sink.recipients()
    assert len(recipients) == len(set(recipients)) == 50


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"variants": [{"subject": "Only one"}]}, "non_field_errors", "at least two variants"),
        ({"variants": [{}, {}]}, "non_field_errors", "at least two variants"),
        ({"tie_variant": "C"}, "tie_variant", "One of the variants: A, B"),
        ({"test_percent": 0}, "test_percent", ""),
        ({"variants": [{"subject": "x"}] * 5}, "variants", "At most 4"),
        (
            {"variants": [{"subject": "x"}, {"email_template": 999_999}]},
            "variants",
            "Variant B, email_template: Select a valid choice",
        ),
    ],
)
def test_bad_input_gets_a_clear_error_and_makes_nothing(api, change, field, message):
    parent = draft()
    request = {"parent": parent.pk, "variants": [{"subject": "A"}, {"subject": "B"}], **change}
    response = api.post("/api/split-tests/", request, format="json")
    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors and message in " ".join(errors[field])
    assert not SplitTest.objects.exists()
    assert MassEmail.objects.count() == 1


def test_a_started_mass_email_cannot_get_a_test(api, outbound_unlimited):
    started = make_queued_mass_email(5)  # its queue is built: too late to split it
    response = api.post(
        "/api/split-tests/",
        {"parent": started.pk, "variants": [{"subject": "A"}, {"subject": "B"}]},
        format="json",
    )
    assert response.status_code == 400 and "parent" in response.json()
    assert not SplitTest.objects.exists()


def test_reading_needs_the_view_permission_and_picking_the_change_one(outbound_unlimited):
    reader = make_user(is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_splittest"))
    client = token_client(reader)
    parent = draft(10)
    marketer = token_client(make_marketer())
    created = marketer.post(
        "/api/split-tests/",
        {"parent": parent.pk, "variants": [{"subject": "A"}, {"subject": "B"}]},
        format="json",
    )
    test_id = created.json()["id"]
    assert client.get("/api/split-tests/").status_code == 200
    assert client.post(f"/api/split-tests/{test_id}/pick/", {"letter": "A"}).status_code == 403
    refused = client.post("/api/split-tests/", {"parent": parent.pk, "variants": []}, format="json")
    assert refused.status_code == 403
    assert token_client().get("/api/split-tests/").status_code == 401
