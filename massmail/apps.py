from django.apps import AppConfig


class MassmailConfig(AppConfig):
    name = "massmail"
    verbose_name = "Mass email"
