"""`manage.py fake_openai`: run the fake OpenAI Realtime GA server, to try the pipeline without a key.

Point the app at it with OPENAI_REALTIME_URL=ws://127.0.0.1:8765/v1/realtime. The server itself
lives in calls.testing.fake_openai (no Django there), imported only when the command is used: no
module a real call loads imports the test peers. This command only parses options and runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run a fake OpenAI Realtime GA WebSocket server (prints one line per event type)."
    requires_system_checks: list[str] = []  # needs no database or app state: start even if those are broken

    def add_arguments(self, parser: CommandParser) -> None:
        from calls.testing.fake_openai import add_arguments

        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        from calls.testing.fake_openai import run_forever, server_from_options

        def log(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        fake = server_from_options(options, log=log)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_forever(fake, announce=log))
