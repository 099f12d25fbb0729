"""Factories for subscription forms, and reading confirmation links out of messages."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import time_machine
from django.test import Client

from campaigns.models import EmailTemplate
from subscriptions.models import SubscriptionForm
from subscriptions.signup import form_token
from tests.factories import make_target_list

CONFIRM_LINK = re.compile(r"https?://[^\s\"<>]+/subscribe/confirm/[^\s\"<>/]+/")


def make_form(*target_lists, **overrides) -> SubscriptionForm:
    template = EmailTemplate.objects.create(
        name="Confirm your subscription",
        subject="Please confirm, {Person.firstName}",
        body_html='<p>Hello {Person.firstName},</p><p><a href="{confirmUrl}">Confirm</a></p>',
    )
    form = SubscriptionForm.objects.create(
        **{"name": "Newsletter form", "confirmation_template": template, **overrides}
    )
    form.target_lists.set(target_lists or [make_target_list()])
    return form


def post_form(
    client: Client, form: SubscriptionForm, *, ip: str = "203.0.113.7", wait: float = 10, **data
):
    """Submit as a person would: the token made `wait` seconds before the POST.

    Keys starting with HTTP_ are request headers, the rest form fields.
    """
    headers = {"HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}
    headers.update({k: data.pop(k) for k in list(data) if k.startswith("HTTP_")})
    fields = {"token": form_token(form, now=time.time() - wait), "first_name": "Ann"}
    fields.update({"last_name": "Example", **data})
    return client.post(f"/subscribe/{form.key}/", fields, REMOTE_ADDR=ip, **headers)


def confirm_link(body: str) -> str:
    match = CONFIRM_LINK.search(body)
    assert match, f"no confirmation link in {body!r}"
    return match.group(0)


def confirm_path(body: str) -> str:
    return "/" + confirm_link(body).split("/", 3)[3]


def later(hours: float):
    return time_machine.travel(timedelta(hours=hours), tick=False)
