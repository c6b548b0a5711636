from django.apps import AppConfig


class InsightsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "insights"
    verbose_name = "Costs, reply times and recordings"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
