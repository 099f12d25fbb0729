"""Campaign and mass email rules: dates, the type lock, which types may have mass emails."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from campaigns.models import Campaign
from tests.factories import make_campaign, make_mass_email

pytestmark = pytest.mark.django_db


def test_end_date_before_start_date_is_rejected():
    campaign = make_campaign(start_date=date(2026, 5, 2), end_date=date(2026, 5, 1))
    with pytest.raises(ValidationError) as error:
        campaign.full_clean()
    assert "end_date" in error.value.message_dict


def test_same_day_start_and_end_is_fine():
    make_campaign(start_date=date(2026, 5, 1), end_date=date(2026, 5, 1)).full_clean()


def test_type_is_locked_once_a_mass_email_exists():
    campaign = make_campaign(type=Campaign.Type.EMAIL)
    campaign.type = Campaign.Type.NEWSLETTER
    campaign.full_clean()  # no mass email yet: free to change
    campaign.save()
    make_mass_email(campaign)
    campaign.type = Campaign.Type.EMAIL
    with pytest.raises(ValidationError) as error:
        campaign.full_clean()
    assert error.value.message_dict["type"] == [
        "The type cannot change once the campaign has a mass email."
    ]


@pytest.mark.parametrize(
    ("campaign_type", "allowed"),
    [
        (Campaign.Type.EMAIL, True),
        (Campaign.Type.NEWSLETTER, True),
        (Campaign.Type.INFORMATIONAL, True),
        (Campaign.Type.WEB, False),
        (Campaign.Type.TELEVISION, False),
        (Campaign.Type.RADIO, False),
        (Campaign.Type.MAIL, False),
    ],
)
def test_mass_email_only_for_email_newsletter_and_informational(campaign_type, allowed):
    mass_email = make_mass_email(make_campaign(type=campaign_type))
    if allowed:
        mass_email.clean()
    else:
        with pytest.raises(ValidationError) as error:
            mass_email.clean()
        assert "campaign" in error.value.message_dict
