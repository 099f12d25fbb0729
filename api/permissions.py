"""The API's permissions are the admin's: staff users with the model permissions of their role."""

from __future__ import annotations

from rest_framework.permissions import DjangoModelPermissions

VIEW = "%(app_label)s.view_%(model_name)s"


class RolePermissions(DjangoModelPermissions):
    """View to read, add/change/delete to write, as in the admin; only staff users.

    A viewset's custom actions name what they need in `action_permissions`
    (action name -> permission names), e.g. pausing a mass email needs
    `massmail.change_massemail` whatever the HTTP method.
    """

    perms_map = {**DjangoModelPermissions.perms_map, "GET": [VIEW], "HEAD": [VIEW]}

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if not (user.is_active and user.is_staff):
            return False  # the admin's rule: a record that is only a target has no access
        required = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if required is not None:
            return user.has_perms(required)
        return super().has_permission(request, view)
