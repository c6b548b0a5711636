from django.apps import AppConfig


class ToolsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tools"
    verbose_name = "Actions: tools, webhooks and outbound calls"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
