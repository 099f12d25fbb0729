"""{% start_page %}: the start page's panels on the admin index (massmail.start)."""

from __future__ import annotations

from django import template

from massmail.start import start_page

register = template.Library()


@register.inclusion_tag("admin/massmail/start_page.html", takes_context=True)
def start_page_panels(context) -> dict:
    request = context["request"]
    if not request.user.has_perm("massmail.view_massemail"):
        return {"page": None}
    return {"page": start_page(), "request": request}
