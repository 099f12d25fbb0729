from django.apps import AppConfig


class MassmailConfig(AppConfig):
    name = "massmail"
    verbose_name = "Mass email"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from massmail import jobs  # noqa: F401 (records the scheduled jobs' runs)
        from massmail.roles import ensure_marketers_group

        # Not only for this app: permissions of apps migrated after it exist only later.
        post_migrate.connect(ensure_marketers_group, dispatch_uid="massmail.marketers")
