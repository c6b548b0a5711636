#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceagent.settings")
    from django.core.management import execute_from_command_line

    from voiceagent.config_errors import SettingError, exit_on_setting_error

    try:
        execute_from_command_line(sys.argv)
    except SettingError as exc:
        exit_on_setting_error(exc)


if __name__ == "__main__":
    main()
