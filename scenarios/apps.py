from django.apps import AppConfig


class ScenariosConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scenarios"
    verbose_name = "Scenario tests"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
