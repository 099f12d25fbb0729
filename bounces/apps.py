from django.apps import AppConfig


class BouncesConfig(AppConfig):
    name = "bounces"
    verbose_name = "Bounces and mailboxes"

    def ready(self) -> None:
        from anymail.signals import tracking

        from bounces import checks  # noqa: F401  (registers the system checks)
        from bounces.webhooks import handle_tracking_event

        tracking.connect(handle_tracking_event, dispatch_uid="bounces.handle_tracking_event")
