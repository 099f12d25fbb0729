"""The Marketers group: everything about targets, campaigns and mass email, but not the
administrator's outbound settings, group email accounts or scheduled jobs."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

MARKETERS = "Marketers"
MARKETING_APPS = ("targets", "campaigns", "massmail", "tracking", "bounces")
ADMINISTRATOR_MODELS = ("outboundsettings", "groupemailaccount")


def ensure_marketers_group(**kwargs) -> Group:
    """Idempotent; runs after every migrate so models added later are covered."""
    group, _ = Group.objects.get_or_create(name=MARKETERS)
    permissions = Permission.objects.filter(content_type__app_label__in=MARKETING_APPS).exclude(
        content_type__model__in=ADMINISTRATOR_MODELS
    )
    users = Permission.objects.filter(
        content_type__app_label="auth", codename__in=["view_user", "change_user"]
    )
    group.permissions.add(*permissions, *users)
    return group
