"""A target list from the campaign log: including and excluding actions, non-test only."""

import re

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.log import create_target_list_from_log
from campaigns.models import CampaignLogRecord
from targets.models import TargetList
from tests.factories import (
    make_campaign,
    make_contact,
    make_lead,
    make_mass_email,
    make_target_list,
    make_user,
)
from tests.log_factories import log, make_queue_item

pytestmark = pytest.mark.django_db
Action = CampaignLogRecord.Action


def members(target_list: TargetList) -> set[tuple[str, int]]:
    return {
        (ContentType.objects.get_for_id(ct).model, object_id)
        for ct, object_id in target_list.members.values_list("content_type", "object_id")
    }


@pytest.fixture
def logged():
    """Hand-made log: who did what in one campaign (and noise that must not count)."""
    campaign = make_campaign()
    mass_email = make_mass_email(campaign)
    people = {
        "opened": make_contact(),
        "opened_then_out": make_contact(),
        "clicked": make_contact(),
        "sent_only": make_contact(),
        "lead_opened": make_lead(),
        "user_bounced": make_user(),
        "deleted_opened": make_contact(),
        "only_in_test": make_contact(),
        "other_campaign": make_contact(),
    }
    items = {
        key: make_queue_item(mass_email, record)
        for key, record in people.items()
        if key not in ("only_in_test", "other_campaign")
    }
    for item in items.values():
        log(item, Action.SENT)
    for key in ("opened", "opened_then_out", "lead_opened", "deleted_opened"):
        log(items[key], Action.OPENED)
    log(items["clicked"], Action.CLICKED)
    log(items["opened_then_out"], Action.OPTED_OUT)
    log(items["user_bounced"], Action.BOUNCED, bounce_type="hard")
    test_item = make_queue_item(mass_email, people["only_in_test"], is_test=True)
    log(test_item, Action.OPENED)
    log(test_item, Action.OPTED_OUT)  # a test opt-out must not exclude anyone either
    log(test_item.__class__.objects.get(pk=test_item.pk), Action.SENT)
    other = make_queue_item(make_mass_email(make_campaign()), people["other_campaign"])
    log(other, Action.OPENED)
    people["deleted_opened"].delete()
    return campaign, {key: (record._meta.model_name, record.pk) for key, record in people.items()}


def test_including_opened_excluding_opted_out(logged):
    campaign, who = logged
    target_list, added = create_target_list_from_log(
        campaign, [Action.OPENED], [Action.OPTED_OUT], name="Opened, still subscribed"
    )
    assert members(target_list) == {who["opened"], who["lead_opened"]}
    assert added == 2
    assert not target_list.members.filter(opted_out=True).exists()
    assert "Opened" in target_list.description and "Opted Out" in target_list.description


def test_several_including_actions_without_exclusion(logged):
    campaign, who = logged
    target_list, _ = create_target_list_from_log(
        campaign, [Action.OPENED, Action.CLICKED, Action.BOUNCED], name="Engaged or bounced"
    )
    assert members(target_list) == {
        who["opened"],
        who["opened_then_out"],
        who["clicked"],
        who["lead_opened"],
        who["user_bounced"],
    }


def test_a_record_with_any_excluded_action_is_left_out(logged):
    campaign, who = logged
    target_list, _ = create_target_list_from_log(
        campaign, [Action.SENT], [Action.OPENED, Action.CLICKED, Action.BOUNCED], name="Silent"
    )
    assert members(target_list) == {who["sent_only"]}


def test_one_member_per_record_even_with_many_matching_entries(logged):
    campaign, who = logged
    target_list, added = create_target_list_from_log(
        campaign, [Action.SENT, Action.OPENED], name="Everyone"
    )
    assert added == target_list.members.count() == 6  # 7 sent, one record since deleted


def test_it_is_one_insert_statement(logged):
    campaign, _ = logged
    with CaptureQueriesContext(connection) as queries:
        create_target_list_from_log(campaign, [Action.OPENED], [Action.OPTED_OUT], name="One")
    inserts = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 2  # the list, then its members in one statement
    assert "SELECT DISTINCT" in inserts[1] and "NOT EXISTS" in inserts[1]


@pytest.mark.parametrize(
    "including, excluding, name, message",
    [
        ([], [], "No actions", "at least one including action"),
        (["opened", "read"], [], "Typo", "Unknown including action(s): read"),
        (["opened"], ["nope"], "Typo 2", "Unknown excluding action(s): nope"),
        (["opened"], [], "  ", "needs a name"),
    ],
)
def test_bad_input_is_refused_and_creates_nothing(logged, including, excluding, name, message):
    campaign, _ = logged
    before = TargetList.objects.count()
    with pytest.raises(ValidationError, match=re.escape(message)):
        create_target_list_from_log(campaign, including, excluding, name=name)
    assert TargetList.objects.count() == before


def test_an_existing_list_name_is_refused_and_that_list_is_untouched(logged):
    campaign, _ = logged
    existing = make_target_list(make_contact(), name="Taken")
    with pytest.raises(ValidationError, match="already exists"):
        create_target_list_from_log(campaign, [Action.OPENED], name="Taken")
    assert existing.members.count() == 1
