from django.apps import AppConfig


class TargetsConfig(AppConfig):
    name = "targets"
    verbose_name = "Targets"

    def ready(self) -> None:
        from targets import signals  # noqa: F401
