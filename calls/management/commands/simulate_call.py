"""`manage.py simulate_call`: ring our own 46elks socket exactly as 46elks would, and say what happened.

A thin wrapper around calls.testing.elks_simulator.CallSimulator for people: it prints the call's
events as they happen (never one line per audio frame) and a summary, and can save what the caller
heard. The simulator is imported when the command runs, so that no module a real call loads
imports the test peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

if TYPE_CHECKING:
    from calls.testing.elks_simulator import CallResult, CallSimulator

DEFAULT_PORT = 8095


def default_url() -> str:
    """Where a local daphne serves the 46elks socket: the path carries the shared secret."""
    secret = getattr(settings, "ELKS_WS_SECRET", None)
    if not secret:
        raise CommandError("ELKS_WS_SECRET is not set: pass --url ws://host:port/ws/elks/<secret>/")
    return f"ws://127.0.0.1:{DEFAULT_PORT}/ws/elks/{secret}/"


class Command(BaseCommand):
    help = (
        "Call the bridge the way 46elks does: hello, caller audio in real time once the server sends "
        "'listening', and a real-time playback buffer honouring interrupt and sync."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", required=True, help="the called number, as 46elks puts it in hello")
        parser.add_argument("--from", dest="from_", default="+46709876543", help="the caller's number")
        parser.add_argument(
            "--url",
            help=f"the socket to call (default: ws://127.0.0.1:{DEFAULT_PORT}/ws/elks/<ELKS_WS_SECRET>/)",
        )
        parser.add_argument("--play", metavar="WAV", help="what the caller says: a 16-bit PCM WAV file")
        parser.add_argument(
            "--script",
            help='what the caller says instead of --play, e.g. "silence:1000,speech:800,silence:3000"',
        )
        parser.add_argument("--record", metavar="WAV", help="save what the caller heard as a WAV file")
        parser.add_argument(
            "--seconds", type=float, default=20, help="hang up after this long (0: wait for the server's bye)"
        )
        parser.add_argument("--callid", help="the callid in hello (default: random hex)")
        parser.add_argument("--frame-ms", type=float, default=20, help="caller audio frame length")
        parser.add_argument("--jitter", action="store_true", help="send caller frames with network-like jitter")
        parser.add_argument(
            "--strict", action="store_true", help="exit with an error if the server broke a 46elks rule"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from calls.testing.caller_audio import parse_script
        from calls.testing.elks_simulator import CallSimulator, SimulatorError

        if options["play"] and options["script"]:
            raise CommandError("use either --play or --script, not both")
        try:
            caller_audio: Any = options["play"] or (parse_script(options["script"]) if options["script"] else None)
        except ValueError as exc:
            raise CommandError(f"bad --script: {exc}") from None
        if options["frame_ms"] <= 0:
            raise CommandError("--frame-ms must be positive")
        try:
            sim = CallSimulator(
                options["url"] or default_url(),
                to=options["to"],
                from_=options["from_"],
                callid=options["callid"],
                caller_audio=caller_audio,
                seconds=options["seconds"] or None,
                frame_ms=options["frame_ms"],
                jitter=options["jitter"],
                on_event=self._print_event,
            )
        except SimulatorError as exc:
            raise CommandError(str(exc)) from None

        try:
            result = asyncio.run(self._call(sim))
        except SimulatorError as exc:
            raise CommandError(str(exc)) from None

        for line in result.summary():
            self.stdout.write(line)
        if options["record"]:
            try:
                result.write_heard_wav(options["record"])
            except OSError as exc:
                raise CommandError(f"cannot write {options['record']}: {exc.strerror or exc}") from None
            self.stdout.write(f"what the caller heard: {options['record']}")
        if options["strict"] and result.violations:
            raise CommandError(f"the server broke {len(result.violations)} 46elks rule(s)")

    async def _call(self, sim: CallSimulator) -> CallResult:
        """Run the call; the first Ctrl-C hangs up like a caller would, a second one aborts."""
        loop = asyncio.get_running_loop()
        hangups: list[asyncio.Task] = []

        def on_sigint() -> None:
            self.stdout.write("Ctrl-C: the caller hangs up (again to abort)")
            loop.remove_signal_handler(signal.SIGINT)
            hangups.append(loop.create_task(sim.hang_up()))

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        self.stdout.write(f"calling {sim.url}")
        try:
            return await sim.run()
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)

    def _print_event(self, at: float, text: str) -> None:
        style = self.style.ERROR if text.startswith("VIOLATION") else (lambda s: s)
        self.stdout.write(style(f"{at:8.3f}s  {text}"))
