"""The test-only custom target types get the target admin the way a deployment would."""

from targets.admin import register_target_admin
from tests.testapp.models import Partner, Volunteer

register_target_admin(
    Partner, list_display=["name", "email_address", "region"], search_fields=["name"]
)
register_target_admin(Volunteer, list_display=["last_name", "first_name", "email_address"])
