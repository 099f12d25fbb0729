"""Double opt-in: only the signed confirmation link adds a person, as the form says."""

import pytest
from django.core import mail

from subscriptions.models import ConsentRecord, SignUp, SubscriptionForm
from subscriptions.signup import delete_expired
from targets.models import Contact, EmailAddress, Lead, TargetListMember
from tests.factories import make_contact, make_lead, make_target_list
from tests.subscription_factories import confirm_path, later, make_form, post_form

pytestmark = pytest.mark.django_db


def _sign_up(client, form, email="ann@example.com", **data) -> str:
    assert post_form(client, form, email=email, **data).status_code == 303
    return confirm_path(mail.outbox[-1].alternatives[0][0])


def test_the_link_shows_a_button_and_only_the_button_confirms(client):
    news, offers = make_target_list(), make_target_list()
    form = make_form(news, offers)
    link = _sign_up(client, form)
    page = client.get(link)
    assert page.status_code == 200 and "Confirm my subscription" in page.content.decode()
    assert not Lead.objects.exists(), "a mail scanner following the link adds nobody"

    response = client.post(link, HTTP_USER_AGENT="Mozilla/5.0 Chromium", REMOTE_ADDR="198.51.100.9")
    assert response.status_code == 303
    assert response["Location"] == f"/subscribe/{form.key}/confirmed/"
    lead = Lead.objects.get()
    assert (lead.first_name, lead.last_name, lead.email) == ("Ann", "Example", "ann@example.com")
    assert lead.source == "Subscription form: Newsletter form"
    members = TargetListMember.objects.filter(object_id=lead.pk, opted_out=False)
    assert set(members.values_list("target_list", flat=True)) == {news.pk, offers.pk}
    assert SignUp.objects.get().status == "confirmed"
    record = ConsentRecord.objects.get(action="confirmation")
    assert record.ip == "198.51.100.0" and record.user_agent == "Mozilla/5.0 Chromium"
    assert record.target_lists == f"{news.name}, {offers.name}"
    assert record.text == form.consent_text and record.form == form


def test_a_second_click_changes_nothing(client):
    form = make_form()
    link = _sign_up(client, form)
    client.post(link)
    assert client.post(link).status_code == 303
    assert Lead.objects.count() == 1 and TargetListMember.objects.count() == 1
    assert ConsentRecord.objects.filter(action="confirmation").count() == 1


def test_a_contact_form_makes_a_contact(client):
    form = make_form(record_type=SubscriptionForm.RecordType.CONTACT)
    client.post(_sign_up(client, form, email="bob@example.com", first_name="Bob"))
    contact = Contact.objects.get()
    assert contact.name == "Bob Example" and not Lead.objects.exists()


def test_an_existing_record_with_the_address_joins_instead_of_a_new_one(client):
    contact = make_contact(email="ann@example.com", first_name="Annette")
    form = make_form()  # a lead form: the existing contact still wins over a new lead
    client.post(_sign_up(client, form, first_name="Someone else"))
    assert not Lead.objects.exists()
    contact.refresh_from_db()
    assert contact.first_name == "Annette", "the record's data is not overwritten"
    assert TargetListMember.objects.get().object_id == contact.pk


def test_the_forms_type_is_preferred_when_both_exist(client):
    make_contact(email="ann@example.com")
    lead = make_lead(email="ann@example.com")
    client.post(_sign_up(client, make_form(record_type="lead")))
    member = TargetListMember.objects.get()
    assert (member.content_type.model, member.object_id) == ("lead", lead.pk)


def test_an_opted_out_address_comes_back_only_through_confirmation(client):
    target_list = make_target_list()
    contact = make_contact(email="ann@example.com")
    member = target_list.add(contact)
    TargetListMember.objects.filter(pk=member.pk).update(opted_out=True)
    EmailAddress.objects.filter(address="ann@example.com").update(opt_out=True)
    link = _sign_up(client, make_form(target_list))
    member.refresh_from_db()
    assert member.opted_out and EmailAddress.objects.get().opt_out, "not before confirming"

    client.post(link)
    member.refresh_from_db()
    assert not member.opted_out and not EmailAddress.objects.get().opt_out
    assert ConsentRecord.objects.filter(action="re_subscription").count() == 1


@pytest.mark.parametrize("token", ["garbage", "altered", "other-salt"])
def test_a_forged_link_shows_a_clear_page_and_adds_nobody(client, token):
    from django.core import signing

    link = _sign_up(client, make_form())
    real = link.rstrip("/").rsplit("/", 1)[1]
    forged = {
        "garbage": "abc:def:ghi",
        "altered": real[:-2] + ("AA" if not real.endswith("AA") else "BB"),
        "other-salt": signing.TimestampSigner(salt="massmail.unsubscribe").sign(real.split(":")[0]),
    }[token]
    for method in (client.get, client.post):
        response = method(f"/subscribe/confirm/{forged}/")
        assert response.status_code == 404
        assert "This confirmation link is not valid" in response.content.decode()
    assert not Lead.objects.exists() and not TargetListMember.objects.exists()
    assert SignUp.objects.get().status == "pending"


def test_an_expired_link_adds_nobody_and_the_sign_up_goes(client):
    form = make_form(confirm_within_hours=48)
    link = _sign_up(client, form)
    with later(hours=49):
        response = client.post(link)
        assert response.status_code == 404
        assert "has expired" in response.content.decode()
        assert not Lead.objects.exists() and not TargetListMember.objects.exists()
        assert delete_expired() == 1
    assert not SignUp.objects.exists()
    assert not ConsentRecord.objects.exists(), "nobody's consent is kept for what never was"


def test_a_link_within_its_time_still_works(client):
    link = _sign_up(client, make_form(confirm_within_hours=48))
    with later(hours=47):
        assert delete_expired() == 0
        client.post(link)
    assert Lead.objects.count() == 1
