"""A call's turns: who is speaking, what the caller heard, and what happens when nobody speaks.

Called by the session for OpenAI's turn events (speech started and stopped, replies created and
done, function calls) and for 46elks' `sync` answers. Barge-in stops 46elks' playback and cuts
the assistant's memory to what the caller heard; a silent caller is reminded, then bid goodbye;
a call at its time limit says goodbye; tools run here, off the audio path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from orjson import dumps as _orjson_dumps

from assistants.realtime_config import AssistantConfig

from . import elks
from .types import Outcome

log = logging.getLogger(__name__)

GOODBYE = "Say a short, friendly goodbye to the caller now, in the language of the conversation."
SILENCE_REPROMPT = (
    "The caller has been silent for a while. Briefly and kindly check whether they are still there, "
    "in the language of the conversation."
)
MAX_DURATION_GOODBYE = (
    "The call has reached its maximum length. Politely tell the caller that you have to end the call now "
    "and say goodbye, in one or two short sentences, in the language of the conversation."
)
SHUTDOWN_GOODBYE = (
    "The line has to close now for maintenance. Apologise briefly, ask the caller to call back in a minute, "
    "and say goodbye, in the language of the conversation."
)
STAFF_GOODBYE = (
    "A member of staff is ending this call now. Say one short, friendly goodbye to the caller, "
    "in the language of the conversation."
)


class CallTurns:
    """The turn-taking of CallSession (see calls.live.session for the state it shares)."""

    def _on_speech_started(self, event: dict) -> None:
        self._silence_stage = 0
        if self._silence_timer is not None:
            self._silence_timer.cancel()
            self._silence_timer = None
        if not self.config.allow_interruptions:
            return
        now = self._now()
        if not self.playback.audible(now):
            return
        # The caller talks over the assistant: stop playback now, then fix the model's memory.
        self._send(elks.INTERRUPT)
        self._need_sending = True
        self._muted_response = self._current_response
        self.stats["interrupts"] += 1
        self._notify("interrupted", now)
        for cut in self.playback.cut(now):
            self._interrupted[cut.item_id] = (cut.heard_ms, cut.received_ms)
            self._rt.send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": cut.item_id,
                    "content_index": 0,
                    "audio_end_ms": cut.heard_ms,
                }
            )
            self.stats["truncates"] += 1
            self._write_assistant(cut.item_id)

    def _on_speech_stopped(self, event: dict) -> None:
        self._notify("speech_stopped", self._now())
        self._arm_silence()

    def _on_response_created(self, event: dict) -> None:
        self._current_response = (event.get("response") or {}).get("id")
        self._response_active = True
        self._response_idle.clear()

    def _on_response_done(self, event: dict) -> None:
        response = event.get("response") or {}
        self._response_active = False
        self._response_idle.set()
        self._notify("response_done", response)
        self._arm_silence()
        status = response.get("status")
        if status == "failed":
            details = response.get("status_details") or {}
            error = details.get("error") or {}
            self._problem("openai response failed", str(error.get("message") or error or details)[:300])
        for item in response.get("output") or ():
            if isinstance(item, dict) and item.get("id") in self._assistant_text:
                self._write_assistant(item["id"])
        if self._end_after_reply is not None and status != "cancelled" and not self._has_function_call(response):
            outcome, self._end_after_reply = self._end_after_reply, None
            self._spawn(self.hang_up(outcome))
        elif self.playback is not None and self.playback.audible(self._now()):
            self._request_sync()

    @staticmethod
    def _has_function_call(response: dict) -> bool:
        return any(isinstance(i, dict) and i.get("type") == "function_call" for i in response.get("output") or ())

    def _on_sync(self) -> None:
        if not self._syncs:
            self._problem("sync we did not ask for", "ignored")
            return
        seq, waiter = self._syncs.popleft()
        if seq == self._audio_seq and self.playback is not None:
            self.playback.played_out(self._now())
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _sync(self, timeout: float) -> bool:
        """Ask 46elks to confirm that everything sent so far has played."""
        waiter = asyncio.get_running_loop().create_future()
        self._syncs.append((self._audio_seq, waiter))
        self._safe_send(elks.SYNC_MSG)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
            return True
        except TimeoutError:
            return False

    def _request_sync(self) -> None:
        """A sync nobody waits for: its answer tells the playback estimate that the queue ran dry."""
        self._syncs.append((self._audio_seq, None))
        self._safe_send(elks.SYNC_MSG)

    def _start_timers(self, cfg: AssistantConfig) -> None:
        loop = asyncio.get_running_loop()
        limit_s = cfg.max_call_minutes * 60 - (self._now() - self.started_at)
        outcome = Outcome("completed", "max_duration", f"The call reached its limit of {cfg.max_call_minutes} minutes.")
        self._timers.append(
            loop.call_later(
                max(limit_s, 0), lambda: self._spawn(self.say_goodbye_and_end(outcome, MAX_DURATION_GOODBYE))
            )
        )
        self._arm_silence()

    def _arm_silence(self) -> None:
        """(Re)start the silence clock: it runs from when the assistant stops being heard."""
        if self.config is None or self._ending is not None:
            return
        if self._silence_timer is not None:
            self._silence_timer.cancel()
        now = self._now()
        delay = self.playback.remaining_s(now) + self.config.silence_timeout_seconds
        self._silence_timer = asyncio.get_running_loop().call_later(delay, self._on_silence)

    def _on_silence(self) -> None:
        self._silence_timer = None
        if self._ending is not None or not self._rt_ready:
            return
        if self._response_active or self.playback.audible(self._now()):
            self._arm_silence()
            return
        if self._silence_stage == 0:
            self._silence_stage = 1
            log.info(
                "call %s: caller silent for %ss; checking they are there",
                self.hello.callid,
                self.config.silence_timeout_seconds,
            )
            self._rt.send({"type": "response.create", "response": {"instructions": SILENCE_REPROMPT}})
        else:
            outcome = Outcome("completed", "silence", "The caller stayed silent after a reminder.")
            self._spawn(self.say_goodbye_and_end(outcome))

    async def say_goodbye_and_end(self, outcome: Outcome, instructions: str = GOODBYE, deadline: float = 12.0) -> None:
        """Have the assistant say goodbye, let it be heard, then hang up; hang up anyway after `deadline`."""
        if self._ending is not None or not self._rt_ready:
            await self.end(outcome, polite=True)
            return
        log.info("call %s: ending (%s)", self.hello.callid, outcome.end_reason)
        try:
            await asyncio.wait_for(self._say_goodbye(outcome, instructions), deadline)
        except TimeoutError:
            log.warning("call %s: goodbye did not finish within %gs; hanging up", self.hello.callid, deadline)
        except Exception as exc:
            log.warning("call %s: could not say goodbye (%s); hanging up", self.hello.callid, exc)
        await self.end(outcome, polite=True)

    def request_goodbye_and_end(self, outcome: Outcome, instructions: str = GOODBYE, deadline: float = 6.0) -> None:
        """Schedule `say_goodbye_and_end` (a staff hang-up) from code that must not wait for the call to end."""
        self._spawn(self.say_goodbye_and_end(outcome, instructions, deadline))

    async def hang_up_now(self, outcome: Outcome) -> None:
        """End at once: bye to 46elks now, whatever is still playing or being said (staff's "Hang up now")."""
        if self._ending is None and not self._elks_bye.is_set() and not self._bye_sent:
            log.info("call %s: ending at once (%s)", self.hello.callid if self.hello else "-", outcome.end_reason)
            self._send_bye()
        await self.end(outcome, polite=False)

    def request_hang_up_now(self, outcome: Outcome) -> None:
        self._spawn(self.hang_up_now(outcome))

    async def _say_goodbye(self, outcome: Outcome, instructions: str) -> None:
        try:
            await asyncio.wait_for(self._response_idle.wait(), 5)
        except TimeoutError:
            self._rt.send({"type": "response.cancel"})
        self._end_after_reply = outcome
        self._rt.send({"type": "response.create", "response": {"instructions": instructions}})
        await self.finished.wait()

    def end_after_reply(self, outcome: Outcome) -> None:
        """End the call once the assistant's next reply has been heard to the end (a goodbye)."""
        self._end_after_reply = outcome

    def _on_function_call(self, event: dict) -> None:
        self._spawn(
            self._run_tool(
                str(event.get("name") or ""), str(event.get("arguments") or "{}"), str(event.get("call_id") or "")
            )
        )

    async def _run_tool(self, name: str, arguments: str, call_id: str) -> None:
        """Run a function off the audio path; the model hears its result (or why it failed)."""
        if self.tools is None:
            output = '{"error": "no tools are available in this call"}'
        else:
            timeout = self.tools.timeout
            try:
                output = await asyncio.wait_for(self.tools.run(self, name, arguments, call_id), timeout)
            except TimeoutError:
                output = f'{{"error": "the {name} tool did not answer within {timeout:g} s"}}'
            except Exception as exc:
                log.exception("call %s: tool %s failed", self.hello.callid, name)
                output = orjson_dumps({"error": f"the {name} tool failed: {type(exc).__name__}"})
        if self._rt is None or self._ending is not None:
            return
        self._rt.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output},
            }
        )
        await self._response_idle.wait()
        if self._rt_ready:
            self._rt.send({"type": "response.create"})


def orjson_dumps(obj: Any) -> str:
    return _orjson_dumps(obj).decode()
