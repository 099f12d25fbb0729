"""Helpers for the REST API's tests: users with tokens, in the admin's roles."""

from __future__ import annotations

from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from massmail.roles import MARKETERS
from tests.factories import make_user


def token_client(user=None) -> APIClient:
    """A client sending the user's token, as a program using the API would."""
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def make_marketer(**overrides):
    user = make_user(is_staff=True, **overrides)
    user.groups.add(Group.objects.get(name=MARKETERS))
    return user
