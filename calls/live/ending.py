"""How a call ends, whoever ends it: 46elks' bye, our hang-up, a lost socket, a failure or a shutdown.

Called by the session and its phases whenever the call must end. The ending runs once; it lets
queued speech play out when it is polite to, says bye, closes OpenAI, waits for 46elks' bye,
records the outcome and tells the observers, and only then closes the socket.
"""

from __future__ import annotations

import asyncio
import logging

from . import elks
from .types import CONNECTION_LOST, Outcome

log = logging.getLogger(__name__)


class CallEnding:
    """The ending of CallSession (see calls.live.session for the state it shares)."""

    async def end(self, outcome: Outcome, *, polite: bool) -> None:
        """End the call once, whoever asks first; later callers wait for the same ending."""
        if self._ending is None:
            self._ending = asyncio.ensure_future(self._end(outcome, polite=polite))
        await asyncio.shield(self._ending)

    async def _end(self, outcome: Outcome, *, polite: bool) -> None:
        if self._opening is not None and not self._opening.done():
            await asyncio.wait((self._opening,))  # the call's record and assistant, so the ending can be recorded
        self.outcome = self.outcome or outcome
        self._cancel_timers()
        self._registry.stopping(self)
        callid = self.hello.callid if self.hello else "-"
        try:
            if polite and not self._elks_bye.is_set():
                if self.playback is not None and self.playback.audible(self._now()):
                    await self._sync(self.playback.remaining_s(self._now()) + 2.0)
                self._send_bye()
            await self._close_realtime()
            if self._bye_sent and not self._elks_bye.is_set():
                try:
                    await asyncio.wait_for(self._elks_bye.wait(), self.settings.bye_timeout)
                except TimeoutError:
                    log.warning("call %s: 46elks did not answer our bye within %gs", callid, self.settings.bye_timeout)
        finally:
            await self._finish_record()
            self._registry.gone(self)
            for observer in self.observers:
                try:
                    await observer.ended(self, self.outcome)
                except Exception:
                    log.exception("call observer %s.ended failed", type(observer).__name__)
            for task in list(self._tasks):
                if task is not asyncio.current_task():
                    task.cancel()
            try:
                await self._close_socket()
            except Exception as exc:
                log.debug("closing the 46elks socket failed: %s", exc)
            self._log_summary(callid)
            self.finished.set()

    async def _close_realtime(self) -> None:
        rt, self._rt_ready = self._rt, False
        if rt is not None:
            await rt.close()
        else:
            self._cancel_early_connect()

    async def _finish_record(self) -> None:
        if self.call_pk is None or self.outcome is None or self.outcome.status == "rejected":
            return
        # Lines an interruption or an early end left unwritten.
        for item_id in list(self._assistant_text):
            if item_id not in self._assistant_final and item_id not in self._interrupted:
                self._write_assistant(item_id)
        try:
            await self.store.finish(self.call_pk, self.outcome)
        except Exception:
            log.exception("call %s: could not record the end of the call", self.hello.callid if self.hello else "-")

    def _on_elks_bye(self, msg: dict) -> None:
        if self.hello is None:
            self._problem("bye before hello", "ignored")
            return
        if self._elks_bye.is_set():
            self._problem("message after bye", "bye")
            return
        self._elks_bye.set()
        reason = msg.get("reason")
        message = str(msg.get("message") or "")[:500]
        log.info("call %s: 46elks bye (%s) %s", self.hello.callid if self.hello else "-", reason, message)
        if self._ending is not None or self.hello is None:
            return
        if reason == "error":
            outcome = Outcome("failed", "telco_error", message or "46elks ended the call with an error.")
        else:
            outcome = Outcome("completed", "caller_hangup", message)
        self._ending = asyncio.ensure_future(self._end(outcome, polite=False))

    def _send_bye(self) -> None:
        if not self._bye_sent:
            self._bye_sent = True
            self._safe_send(elks.BYE_MSG)

    def _lose_caller(self) -> None:
        """A send to 46elks failed: stop relaying. 46elks' bye or the disconnect, on its way, says how it ended."""
        if self._caller_gone:
            return
        self._caller_gone = True
        self._rt_ready = False
        self._spawn(self._end_if_caller_silent())

    async def _end_if_caller_silent(self) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self.finished.wait()), self.settings.bye_timeout)
        except TimeoutError:
            await self.end(CONNECTION_LOST, polite=False)

    async def _wait_elks_bye_then_close(self) -> None:
        try:
            await asyncio.wait_for(self._elks_bye.wait(), self.settings.bye_timeout)
        except TimeoutError:
            pass
        await self.end(self.outcome, polite=False)

    def _no_hello(self) -> None:
        log.warning("46elks connection sent no hello within %gs; closing", self.settings.hello_timeout)
        self._ending = asyncio.ensure_future(self._end(Outcome("failed", "protocol_error", "no hello"), polite=False))

    def _cancel_hello_timer(self) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_hello_timer()
        for timer in self._timers:
            timer.cancel()
        if self._silence_timer is not None:
            self._silence_timer.cancel()
            self._silence_timer = None

    def _log_summary(self, callid: str) -> None:
        outcome = self.outcome
        extra = f" problems={dict(self.problems)}" if self.problems else ""
        log.info(
            "call %s ended: %s/%s %s audio_in=%d audio_out=%d interrupts=%d%s",
            callid,
            outcome.status if outcome else "-",
            outcome.end_reason if outcome else "-",
            (outcome.detail if outcome else "")[:200],
            self.stats["audio_in"],
            self.stats["audio_out"],
            self.stats["interrupts"],
            extra,
        )
