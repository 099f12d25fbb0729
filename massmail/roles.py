"""The Marketers group: what a marketer needs, and nothing that administers the system.

The grant is a whitelist, and it is *set*, not added to, after every migrate: a
permission this list does not name (a model added later, or one granted by an older
release, such as `auth.change_user`) is taken away. Marketers never get users beyond
viewing them (users are targets too), groups, permissions, outbound settings, group
email accounts (mailbox credentials), scheduled jobs, or the internals of queue
items and import runs, which only the engine and the lifecycle actions change.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from targets.registry import target_types

MARKETERS = "Marketers"

ALL = ("view", "add", "change", "delete")
# app_label.model -> the actions a marketer may take on it.
MARKETER_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "targets.account": ALL,
    "targets.contact": ALL,
    "targets.lead": ALL,
    "targets.targetlist": ALL,
    "targets.targetlistmember": ALL,
    "targets.segment": ALL,
    "targets.segmentcondition": ALL,
    # Mark opted out / invalid and back; address rows are shared, never deleted here.
    "targets.emailaddress": ("view", "change"),
    # Runs start from a target list's Import CSV page; their internals are the importer's.
    "targets.importrun": ("view", "delete"),
    "campaigns.campaign": ALL,
    "campaigns.emailtemplate": ALL,
    # The reference: log rows can only be removed.
    "campaigns.campaignlogrecord": ("view", "delete"),
    "massmail.massemail": ALL,
    # Statuses move only through the engine and the Retry action (change_massemail).
    "massmail.queueitem": ("view",),
    # A test runs by itself once made; the manual pick is change_massemail.
    "massmail.splittest": ("view", "add"),
    "massmail.splitvariant": ("view",),
    "tracking.trackingurl": ALL,
    "tracking.hit": ("view", "delete"),
    "tracking.unsubscribepagetext": ALL,
    "bounces.bounceevent": ("view",),
    # Change: only "mark reviewed"; the fields stay read-only.
    "bounces.unmatchedbounce": ("view", "change"),
    "bounces.processedmessage": ("view",),
    "auth.user": ("view",),
}


def marketer_permissions() -> dict[str, tuple[str, ...]]:
    """The whitelist plus full rights on the deployment's custom target types."""
    granted = dict(MARKETER_PERMISSIONS)
    for target_type in target_types():
        label = target_type.model._meta.label_lower
        granted.setdefault(label, ALL)
    return granted


def ensure_marketers_group(**kwargs) -> Group:
    """Idempotent; runs after every migrate so models added later are covered."""
    group, _ = Group.objects.get_or_create(name=MARKETERS)
    wanted = Q(pk__in=[])
    for label, actions in marketer_permissions().items():
        app_label, model = label.split(".")
        wanted |= Q(
            content_type__app_label=app_label,
            content_type__model=model,
            codename__in=[f"{action}_{model}" for action in actions],
        )
    group.permissions.set(Permission.objects.filter(wanted))
    return group
