"""Placeholders that cannot render are refused when the mass email or template is saved."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from campaigns.forms import EmailTemplateForm
from campaigns.models import Campaign
from massmail.placeholders import snake, split, validate_mass_email, validate_template
from tests.factories import make_campaign, make_mass_email, make_template, make_tracking_url

pytestmark = pytest.mark.django_db


def clean_errors(mass_email) -> list[str]:
    with pytest.raises(ValidationError) as error:
        mass_email.full_clean()
    return error.value.message_dict["email_template"]


def test_known_placeholders_pass():
    campaign = make_campaign()
    tracking_url = make_tracking_url(campaign)
    template = make_template(
        subject="{Person.firstName} {Contact.lastName} {today} {currentYear} {emailAddress}",
        body_html=(
            "{Person.name} {Person.lastName} {Contact.account.name} {Lead.accountName} "
            "{Account.name} {User.firstName} {Partner.region} {Volunteer.lastName} {now} "
            f"{{queueItemId}} {{optOutUrl}} {{optOutLink}} {tracking_url.code} {{Person.title}}"
        ),
    )
    mass_email = make_mass_email(campaign, email_template=template)
    assert validate_mass_email(mass_email) == []
    mass_email.full_clean()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{Contact.shoeSize}", "Contact has no shoe_size"),
        ("{Customer.name}", "Customer is not one of Person, Account, Contact"),
        ("{firstName}", "Unknown placeholder {firstName}"),
        ("{Contact.account.owner.name}", "one record away"),
        ("{Contact.account.shoeSize}", "Account has no shoe_size"),
        ("{Person.shoeSize}", "no person type has shoe_size"),
        ("{User.password}", "User has no password"),
        ("{Contact.email_address_links}", "Contact has no email_address_links"),
        ("{trackingUrl:abc}", "by its number"),
        ("{trackingUrl:999999}", "there is no tracking URL 999999"),
        ("{@trapUrl}", "Unknown placeholder {@trapUrl}"),
    ],
)
def test_unknown_placeholders_are_errors_on_save(body, message):
    mass_email = make_mass_email(email_template=make_template(body_html=f"<p>{body}</p>"))
    errors = clean_errors(mass_email)
    assert any(message in error for error in errors), errors


def test_tracking_url_of_another_campaign_is_an_error_on_save():
    other = make_tracking_url(make_campaign())
    mass_email = make_mass_email(
        make_campaign(), email_template=make_template(body_html=f'<a href="{other.code}">x</a>')
    )
    errors = clean_errors(mass_email)
    assert errors == [
        f"{other.code} is a tracking URL of another campaign; "
        "use one of this mass email's campaign or a shared one."
    ]


def test_body_only_placeholders_are_errors_in_the_subject():
    campaign = make_campaign()
    tracking_url = make_tracking_url(campaign)
    template = make_template(subject=f"{{optOutUrl}} {{queueItemId}} {tracking_url.code}")
    errors = clean_errors(make_mass_email(campaign, email_template=template))
    assert len(errors) == 3
    assert all("only be used in the body" in error for error in errors)


def test_errors_in_the_text_body_count_too():
    template = make_template(body_text="Hi {Contact.nickname}")
    assert "Contact has no nickname" in clean_errors(make_mass_email(email_template=template))[0]


def test_informational_mass_email_cannot_carry_an_opt_out_link():
    campaign = make_campaign(type=Campaign.Type.INFORMATIONAL)
    template = make_template(body_html="<p>{optOutLink}</p>")
    errors = clean_errors(make_mass_email(campaign, email_template=template))
    assert errors == [
        "{optOutLink}: informational emails have no unsubscribe page; remove the link."
    ]


def test_each_error_is_reported_once():
    template = make_template(subject="{bad}", body_html="{bad} {bad}", body_text="{bad}")
    assert validate_template(template) == ["Unknown placeholder {bad}."]


def test_template_on_its_own_accepts_any_existing_tracking_url():
    tracking_url = make_tracking_url(make_campaign())
    assert validate_template(make_template(body_html=tracking_url.code)) == []
    assert validate_template(make_template(body_html="{trackingUrl:987654}")) == [
        "{trackingUrl:987654}: there is no tracking URL 987654."
    ]


def test_template_admin_form_refuses_unknown_placeholders():
    form = EmailTemplateForm(
        data={"name": "T", "subject": "Hi {Person.fristName}", "body_html": "<p>x</p>"}
    )
    assert not form.is_valid()
    assert "no person type has frist_name" in str(form.errors)

    form = EmailTemplateForm(
        data={"name": "T", "subject": "Hi {Person.firstName}", "body_html": "<p>x</p>"}
    )
    assert form.is_valid(), form.errors


def test_template_admin_form_checks_the_campaigns_that_use_it():
    campaign = make_campaign()
    mass_email = make_mass_email(campaign)
    other = make_tracking_url(make_campaign())
    form = EmailTemplateForm(
        instance=mass_email.email_template,
        data={"name": "T", "subject": "Hi", "body_html": f'<a href="{other.code}">x</a>'},
    )
    assert not form.is_valid()
    assert "another campaign" in str(form.errors)


def test_split_leaves_css_and_json_alone():
    literals, keys = split('a{color:red} { margin: 0 } {"k": 1} {Person.name}!')
    assert keys == ("Person.name",)
    assert literals == ('a{color:red} { margin: 0 } {"k": 1} ', "!")


@pytest.mark.parametrize(
    ("camel", "field"),
    [("firstName", "first_name"), ("accountName", "account_name"), ("name", "name")],
)
def test_camel_case_names_map_to_fields(camel, field):
    assert snake(camel) == field


def test_opt_out_link_inside_an_attribute_is_an_error():
    template = make_template(body_html='<a href="{optOutLink}">Leave</a>')
    assert validate_template(template) == [
        '{optOutLink} is a whole link; inside href="..." use {optOutUrl}.'
    ]
    assert validate_template(make_template(body_html='<a href="{optOutUrl}">Leave</a>')) == []
