from django.apps import AppConfig


class AssistantsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "assistants"
    verbose_name = "Assistants and numbers"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
