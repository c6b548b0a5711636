"""The error a misconfigured environment raises, so the commands can print it as one clear line."""

from django.core.exceptions import ImproperlyConfigured


class SettingError(ImproperlyConfigured):
    """A setting is missing or wrong; the message says which variable to set, and how."""


def exit_on_setting_error(exc: SettingError) -> None:
    """Print the message as one line on stderr and stop the process (no traceback: it is not a bug)."""
    import sys

    sys.stderr.write(f"voiceagent: configuration error: {exc}\n")
    raise SystemExit(2)
