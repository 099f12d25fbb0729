"""A custom target type that exists only in tests, registered through settings."""

from django.db import models

from targets.models import HasEmailAddresses


class Partner(HasEmailAddresses):
    """A Company-type custom entity, like one an administrator would add."""

    name = models.CharField(max_length=200)
    region = models.CharField(max_length=100, blank=True)

    class Meta:
        app_label = "testapp"

    def __str__(self) -> str:
        return self.name


class Volunteer(HasEmailAddresses):
    """A Person-type custom entity."""

    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100)

    class Meta:
        app_label = "testapp"

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def name(self) -> str:
        return str(self)
