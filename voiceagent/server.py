"""Run the product: daphne, plus what a phone product needs that daphne's command line does not do.

- SIGTERM (a deploy, a dyno restart) ends live calls politely and records them before the
  process exits, within SHUTDOWN_GRACE_SECONDS, then waits for what the calls left behind (a
  recording being written: settings.SHUTDOWN_WAITERS); daphne alone may cancel nothing.
- The access log hides the 46elks secret, which is part of the call socket's path.
- The process beats (calls.processes): calls of a process that died are closed within 30 s by
  any live one, and at once when the same slot (dyno, or host and port) starts again.
- Call sockets get a fast lane for their audio frames (voiceagent.fastlane), unless FAST_LANE=0 or
  its start-up self-check finds daphne/autobahn/Twisted not as it was written for (then a warning).
- The event loop's lag is measured (voiceagent.looplag) for /metrics and the log.

Usage: python -m voiceagent.server [--host 0.0.0.0] [--port $PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys

log = logging.getLogger("voiceagent.server")


def use_uvloop() -> bool:
    """Run Twisted's asyncio reactor on uvloop: the same code, a faster loop under every frame.

    Must happen before daphne is imported, since daphne creates its loop at import time.
    """
    if os.environ.get("VOICEAGENT_UVLOOP", "1") == "0":
        return False
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def _redacting_access_log(stream, secret: str):
    from daphne.access import AccessLogGenerator

    class RedactingAccessLog(AccessLogGenerator):
        def write_entry(self, host, date, request, status=None, length=None, ident=None, user=None):
            if secret:
                request = request.replace(secret, "***")
            super().write_entry(host, date, request, status, length, ident, user)

    return RedactingAccessLog(stream)


async def shutdown_calls(grace: float) -> int:
    """End every live call of this process politely, within `grace` seconds; returns how many."""
    from calls.live.registry import PROCESS_CALLS as registry
    from calls.live.turns import SHUTDOWN_GOODBYE
    from calls.live.types import Outcome

    registry.accepting = False
    sessions = list(registry.live)
    finishing = [asyncio.ensure_future(s.finished.wait()) for s in registry.ending]
    if not sessions:
        if finishing:
            await asyncio.wait(finishing, timeout=grace)
        return 0
    log.warning("shutting down: ending %d live call(s)", len(sessions))
    outcome = Outcome("failed", "server_shutdown", "The server restarted during the call; the caller was told goodbye.")
    tasks = [
        asyncio.ensure_future(s.say_goodbye_and_end(outcome, SHUTDOWN_GOODBYE, deadline=grace * 0.6)) for s in sessions
    ]
    _, pending = await asyncio.wait(tasks + finishing, timeout=grace)
    if pending:
        # Out of time: record what is left without waiting for anyone.
        await asyncio.wait([asyncio.ensure_future(s.abort(outcome)) for s in sessions], timeout=2)
    return len(sessions)


def steady_pauses() -> None:
    """Keep the interpreter's own pauses short, since each one delays every live call's audio.

    - The garbage collector: the ~100 000 objects of the loaded code live as long as the process;
      frozen, a full collection no longer walks them (tens of milliseconds each time otherwise).
    - Threads: a database thread running ORM code keeps the event loop waiting for the GIL for up
      to the switch interval (5 ms by default); 1 ms bounds that wait.
    """
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(0.001)


def log_memory_summary() -> None:
    """SIGUSR1: what this process holds (live calls, tasks, objects), for operators; also trims the heap.

    The objects counted are those made since start-up: the start-up heap is frozen (`steady_pauses`).
    """
    import collections

    from calls.live.registry import PROCESS_CALLS as registry

    gc.collect()
    try:  # give memory Python freed back to the system, so RSS shows what is really held
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    tasks = asyncio.all_tasks()
    log.warning(
        "memory summary: live_calls=%d ending_calls=%d tasks=%d objects=%d top_objects=%s",
        len(registry.live),
        len(registry.ending),
        len(tasks),
        len(gc.get_objects()),
        ", ".join(f"{name}={n}" for name, n in counts.most_common(25)),
    )


def fast_lane_wanted(setting: bool) -> bool:
    """FAST_LANE, unless the installed libraries fail the lane's self-check (then one clear warning)."""
    if not setting:
        log.info("call sockets: plain daphne/Channels (FAST_LANE=0)")
        return False
    from voiceagent.fastlane import self_check

    problems = self_check()
    if problems:
        log.warning(
            "fast lane switched off: %s. Call sockets run through plain daphne/Channels (as with FAST_LANE=0), "
            "slower but safe; pin the versions in requirements.txt or update voiceagent/fastlane.py.",
            "; ".join(problems),
        )
        return False
    log.info("call sockets: fast lane")
    return True


def log_call_summary() -> None:
    """SIGUSR2: how many calls this process holds, at once (no garbage collection, no object count).

    Cheap enough to ask after every call: the test suite waits on it before it clears the database.
    """
    from calls.live.registry import PROCESS_CALLS as registry

    log.warning(
        "call summary: live_calls=%d ending_calls=%d tasks=%d",
        len(registry.live),
        len(registry.ending),
        len(asyncio.all_tasks()),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8095")))
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument(
        "--lane",
        choices=["fast", "public"],
        default="fast",
        help="experimental: 'public' serves call sockets through voiceagent.publiclane (autobahn's public API "
        "only) instead of the fast lane, for the benchmark",
    )
    args = parser.parse_args(argv)

    uvloop_on = use_uvloop()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceagent.settings")
    from django.conf import settings

    from voiceagent.config_errors import SettingError, exit_on_setting_error

    try:
        from voiceagent.asgi import application  # sets Django up
    except SettingError as exc:
        exit_on_setting_error(exc)

    logging.basicConfig(level=settings.LOG_LEVEL, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log.info("event loop: %s", "uvloop" if uvloop_on else "asyncio")
    from daphne.server import Server

    from calls import processes
    from calls.hooks import wait_for_shutdown
    from calls.services import calls_close_stale
    from voiceagent.fastlane import FastLaneServer

    try:
        me, closed = processes.register(port=args.port)
        closed += calls_close_stale()
        log.info("server process %s (boot %s) recorded", me.slot, me.boot_id)
        if closed:
            log.warning("closed %d call(s) left active by a stopped process", closed)
    except Exception as exc:  # the database may be briefly unavailable; calls still work
        log.error("could not record this server process or close stale calls at start: %s", exc)

    server_class = FastLaneServer if fast_lane_wanted(settings.FAST_LANE) else Server
    if args.lane == "public" and server_class is FastLaneServer:
        from voiceagent.publiclane import PublicLaneServer

        log.warning("call sockets: the experimental public-API lane (--lane public)")
        server_class = PublicLaneServer
    server: Server | None = None

    stopping: list[bool] = []
    stop_task: list[asyncio.Task] = []
    heartbeat: list[asyncio.Task] = []

    def on_signal(signum: int) -> None:
        if stopping:
            log.warning("received %s again: stopping now", signal.Signals(signum).name)
            server.stop()
            return
        stopping.append(True)
        log.warning("received %s: stopping after live calls end", signal.Signals(signum).name)
        loop = asyncio.get_event_loop()

        async def stop() -> None:
            started = loop.time()
            try:
                await shutdown_calls(settings.SHUTDOWN_GRACE_SECONDS)
                # Recordings being written and the like; at least a few seconds even if the calls took long.
                await wait_for_shutdown(max(settings.SHUTDOWN_GRACE_SECONDS - (loop.time() - started), 5.0))
                for task in heartbeat:
                    task.cancel()
                await processes.stopped()
            finally:
                server.stop()

        stop_task.append(loop.create_task(stop()))

    def ready() -> None:
        loop = asyncio.get_event_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        loop.add_signal_handler(signal.SIGUSR1, log_memory_summary)
        heartbeat.append(loop.create_task(processes.heartbeat_forever(settings.SERVER_HEARTBEAT_SECONDS)))
        loop.add_signal_handler(signal.SIGUSR2, log_call_summary)
        steady_pauses()
        from insights.metrics import observe_loop_lag
        from voiceagent.looplag import LoopLagProbe

        LoopLagProbe(observe_loop_lag, log_every_s=settings.LOOP_LAG_LOG_EVERY_SECONDS).start(loop)

    server = server_class(
        application=application,
        endpoints=[f"tcp:port={args.port}:interface={args.host}"],
        signal_handlers=False,
        action_logger=None if args.no_access_log else _redacting_access_log(sys.stdout, settings.ELKS_WS_SECRET),
        websocket_max_message_size=settings.ELKS_MAX_MESSAGE_BYTES * 4,
        websocket_max_frame_size=settings.ELKS_MAX_MESSAGE_BYTES * 4,
        application_close_timeout=settings.SHUTDOWN_GRACE_SECONDS,
        ready_callable=ready,
    )
    server.run()


if __name__ == "__main__":
    main()
