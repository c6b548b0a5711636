"""The assistant's side of a fake OpenAI session: responses streamed as the service streams them.

A mixin of FakeSession. A response sends its audio (a `tone`) and its transcript in deltas,
faster than real time by default, as the service does; it stops early when cancelled (barge-in
or `response.cancel`) and then reports what it had produced, so that truncation and the
conversation's state match the real service. Planned function calls stream their arguments
instead. Usage counts tokens roughly as the service does, including caching.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from assistants.audio_formats import AudioFormat
from calls.testing.fake_openai.voice import tone

if TYPE_CHECKING:
    from calls.testing.fake_openai.session import FakeSession

DEFAULT_REPLY = "How can I help you today?"


def tokens(text: str) -> int:
    """Roughly the service's token count of a text."""
    return math.ceil(len(text) / 4) if text else 0


def reply_from_instructions(instructions: str) -> str:
    """What a model told 'say exactly the following:\\n<text>' would say: the text after the colon."""
    _, sep, tail = instructions.rpartition(":\n")
    return tail.strip() if sep and tail.strip() else instructions.strip()


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


@dataclass
class StreamedResponse:
    """One response while it streams (`FakeSession.active_response`)."""

    id: str
    instructions: str | None
    modalities: list[str]
    cancel_reason: str | None = None
    finishing: bool = False
    stopped: bool = False
    task: asyncio.Task | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    _waiter: asyncio.Future[None] | None = None

    def stop(self) -> None:
        """Wake the stream from its pause at once (after cancel_reason is set)."""
        self.stopped = True
        _wake(self._waiter)

    async def pause_until(self, until: float) -> None:
        """Sleep until `until` (monotonic) or stop(): a timer, not a task, since replies pause per delta."""
        delay = until - time.monotonic()
        if delay <= 0 or self.stopped:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(delay, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


@dataclass
class _AudioItem:
    fmt: AudioFormat
    planned_ms: float
    text: str
    produced_bytes: int = 0
    truncated_ms: float | None = None

    @property
    def produced_ms(self) -> float:
        if self.truncated_ms is not None:
            return self.truncated_ms
        return self.fmt.ms(self.produced_bytes)


class Responses:
    """Response streaming for FakeSession (see the module docstring)."""

    def _init_responses(self: FakeSession) -> None:
        self.active_response: StreamedResponse | None = None
        self._audio_items: dict[str, _AudioItem] = {}
        self._responses_started = 0
        self._last_input_tokens = 0

    async def _on_response_create(self: FakeSession, data: dict[str, Any], eid: str | None) -> None:
        if self.active_response is not None:
            await self.send_error(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active_response.id}. "
                "Wait until the response is finished before creating a new one.",
                None,
                eid,
            )
            return
        params = data.get("response") or {}
        self._start_response(params.get("instructions"), params.get("output_modalities"))

    async def _on_response_cancel(self: FakeSession, data: dict[str, Any], eid: str | None) -> None:
        wanted = data.get("response_id")
        active = self.active_response
        if active is None or active.finishing or (wanted and wanted != active.id):
            await self.send_error(
                "response_cancel_not_active", "Cancellation failed: no active response found", None, eid
            )
            return
        await self._cancel_active("client_cancelled")

    # -- responses ---------------------------------------------------------------------------------

    def _start_response(self: FakeSession, instructions: str | None, modalities: list[str] | None) -> StreamedResponse:
        resp = StreamedResponse(
            id=self.fake._new_id("resp"),
            instructions=instructions,
            modalities=list(modalities or self.state.get("output_modalities") or ["audio"]),
        )
        self.active_response = resp
        self._responses_started += 1
        resp.task = self._spawn(self._run_response(resp))
        return resp

    async def _cancel_active(self: FakeSession, reason: str) -> None:
        """Stop the streaming response; returns once its `response.done` (cancelled) went out."""
        resp = self.active_response
        if resp is None or resp.finishing or resp.cancel_reason:
            return
        resp.cancel_reason = reason
        resp.stop()
        if resp.task is not None and resp.task is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await asyncio.shield(resp.task)

    def _response_object(
        self: FakeSession, resp: StreamedResponse, status: str, usage: dict | None = None, details: dict | None = None
    ) -> dict[str, Any]:
        out = self.state["audio"]["output"]
        return {
            "id": resp.id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": copy.deepcopy(resp.output),
            "conversation_id": f"conv_{self.id[5:]}",
            "output_modalities": resp.modalities,
            "max_output_tokens": self.state.get("max_output_tokens", "inf"),
            "audio": {"output": {"format": copy.deepcopy(out["format"]), "voice": out["voice"]}},
            "usage": usage,
            "metadata": None,
        }

    def _usage(self: FakeSession, resp: StreamedResponse, out_audio_ms: float, out_text: str) -> dict[str, Any]:
        instructions = resp.instructions if resp.instructions is not None else self.state.get("instructions", "")
        text_in = 12 + tokens(instructions) + tokens(json.dumps(self.state.get("tools") or [])) + self._ctx_text_tokens
        audio_in = self._ctx_audio_tokens
        input_tokens = text_in + audio_in
        cached = min(input_tokens, (self._last_input_tokens // 64) * 64)
        cached_text = min(cached, text_in)
        self._last_input_tokens = input_tokens
        audio_out = round(out_audio_ms / 50)
        text_out = tokens(out_text)
        return {
            "total_tokens": input_tokens + audio_out + text_out,
            "input_tokens": input_tokens,
            "output_tokens": audio_out + text_out,
            "input_token_details": {
                "text_tokens": text_in,
                "audio_tokens": audio_in,
                "image_tokens": 0,
                "cached_tokens": cached,
                "cached_tokens_details": {
                    "text_tokens": cached_text,
                    "audio_tokens": cached - cached_text,
                    "image_tokens": 0,
                },
            },
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }

    async def _run_response(self: FakeSession, resp: StreamedResponse) -> None:
        try:
            await self._stream_response(resp)
        except ConnectionClosed:
            pass
        finally:
            if self.active_response is resp:
                self.active_response = None

    async def _finish_response(
        self: FakeSession, resp: StreamedResponse, status: str, usage: dict, details: dict | None
    ) -> None:
        response = self._response_object(resp, status, usage, details)
        self.responses.append(response)
        if self.active_response is resp:
            self.active_response = None
        await self.send_event({"type": "response.done", "response": response})

    async def _stream_response(self: FakeSession, resp: StreamedResponse) -> None:
        await self.send_event({"type": "response.created", "response": self._response_object(resp, "in_progress")})
        await self.send_event(
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
                    {"name": "tokens", "limit": 800000, "remaining": 795000, "reset_seconds": 0.375},
                ],
            }
        )
        failure = self._knob("error_on_response")
        if failure:
            error = {"type": "server_error", "code": None, "message": "The server had an error.", **failure}
            resp.finishing = True
            await self._finish_response(resp, "failed", self._usage(resp, 0, ""), {"type": "failed", "error": error})
            return
        calls = self._knob("reply_tool_calls")
        planned = calls.pop(0) if calls else None
        if isinstance(planned, dict):
            await self._stream_function_call(resp, planned)
        else:
            await self._stream_message(resp)

    def _next_reply_text(self: FakeSession, resp: StreamedResponse) -> str:
        queue = self._knob("reply_texts")
        if queue:
            return queue.pop(0)
        if resp.instructions:
            return reply_from_instructions(resp.instructions)
        return DEFAULT_REPLY

    async def _stream_message(self: FakeSession, resp: StreamedResponse) -> None:
        text = self._next_reply_text(resp)
        audio_mode = "audio" in resp.modalities
        keep_audio = self.fake.keep_audio
        fmt = self.output_format
        planned_ms = float(self._knob("answer_ms")) if audio_mode else 0.0
        item_id = self.fake._new_id("item")
        previous = next(reversed(self.items), None)
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self.items[item_id] = item
        ids = {"response_id": resp.id, "item_id": item_id, "output_index": 0, "content_index": 0}
        resp.output = [item]
        if audio_mode:
            self._audio_items[item_id] = _AudioItem(fmt, planned_ms, text)
            if keep_audio:
                self.sent_audio[item_id] = bytearray()
        await self.send_event(
            {
                "type": "response.output_item.added",
                "response_id": resp.id,
                "output_index": 0,
                "item": copy.deepcopy(item),
            }
        )
        await self.send_event(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        part = {"type": "audio", "transcript": ""} if audio_mode else {"type": "text", "text": ""}
        await self.send_event({"type": "response.content_part.added", **ids, "part": part})

        audio = tone(fmt, planned_ms) if audio_mode else b""
        chunk_ms = float(self._knob("chunk_ms"))
        step = max(fmt.bytes_per_sample, int(chunk_ms * fmt.sample_rate / 1000) * fmt.bytes_per_sample)
        chunks = [audio[i : i + step] for i in range(0, len(audio), step)] if audio_mode else [b""] * 5
        n = max(1, len(chunks))
        pieces = [text[round(len(text) * k / n) : round(len(text) * (k + 1) / n)] for k in range(n)]
        interval = float(self._knob("chunk_interval_ms")) / 1000
        await resp.pause_until(time.monotonic() + float(self._knob("first_delta_delay_ms")) / 1000)
        said = ""
        produced_ms = 0.0
        start = time.monotonic()
        for k in range(n):
            if resp.cancel_reason:
                break
            if audio_mode and k < len(chunks):
                chunk = chunks[k]
                await self.send_event(
                    {
                        "type": "response.output_audio.delta",
                        **ids,
                        "delta": base64.b64encode(chunk).decode("ascii"),
                    }
                )
                if keep_audio:
                    self.sent_audio[item_id] += chunk
                self._audio_items[item_id].produced_bytes += len(chunk)
                produced_ms += fmt.ms(len(chunk))
            if pieces[k]:
                kind = "response.output_audio_transcript.delta" if audio_mode else "response.output_text.delta"
                await self.send_event({"type": kind, **ids, "delta": pieces[k]})
                said += pieces[k]
            if k < n - 1 and interval > 0:
                await resp.pause_until(start + (k + 1) * interval)
        key = "transcript" if audio_mode else "text"
        content_type = "output_audio" if audio_mode else "output_text"
        if resp.cancel_reason:
            resp.finishing = True
            item["status"] = "incomplete"
            item["content"] = [{"type": content_type, key: said}]
            resp.output = [copy.deepcopy(item)]
            self._ctx_audio_tokens += round(produced_ms / 50)
            await self._finish_response(
                resp,
                "cancelled",
                self._usage(resp, produced_ms, said),
                {"type": "cancelled", "reason": resp.cancel_reason},
            )
            return
        resp.finishing = True
        if audio_mode:
            await self.send_event({"type": "response.output_audio.done", **ids})
            await self.send_event({"type": "response.output_audio_transcript.done", **ids, "transcript": text})
            await self.send_event(
                {"type": "response.content_part.done", **ids, "part": {"type": "audio", "transcript": text}}
            )
        else:
            await self.send_event({"type": "response.output_text.done", **ids, "text": text})
            await self.send_event({"type": "response.content_part.done", **ids, "part": {"type": "text", "text": text}})
        item["status"] = "completed"
        item["content"] = [{"type": content_type, key: text}]
        resp.output = [copy.deepcopy(item)]
        await self.send_event(
            {
                "type": "response.output_item.done",
                "response_id": resp.id,
                "output_index": 0,
                "item": copy.deepcopy(item),
            }
        )
        await self.send_event(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        usage = self._usage(resp, produced_ms, text)
        self._ctx_audio_tokens += round(produced_ms / 50)
        self._ctx_text_tokens += 0 if audio_mode else tokens(text)
        await self._finish_response(resp, "completed", usage, None)

    async def _stream_function_call(self: FakeSession, resp: StreamedResponse, call: dict[str, Any]) -> None:
        name = call["name"]
        arguments = call.get("arguments", {})
        arguments = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call_id = call.get("call_id") or f"call_{secrets.token_hex(8)}"
        item_id = self.fake._new_id("item")
        previous = next(reversed(self.items), None)
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": name,
            "call_id": call_id,
            "arguments": "",
        }
        self.items[item_id] = item
        resp.output = [item]
        await self.send_event(
            {
                "type": "response.output_item.added",
                "response_id": resp.id,
                "output_index": 0,
                "item": copy.deepcopy(item),
            }
        )
        await self.send_event(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        ids = {"response_id": resp.id, "item_id": item_id, "output_index": 0, "call_id": call_id}
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            if resp.cancel_reason:
                break
            if piece:
                await self.send_event({"type": "response.function_call_arguments.delta", **ids, "delta": piece})
        if resp.cancel_reason:
            resp.finishing = True
            item["status"] = "incomplete"
            resp.output = [copy.deepcopy(item)]
            await self._finish_response(
                resp,
                "cancelled",
                self._usage(resp, 0, ""),
                {"type": "cancelled", "reason": resp.cancel_reason},
            )
            return
        resp.finishing = True
        await self.send_event(
            {"type": "response.function_call_arguments.done", **ids, "name": name, "arguments": arguments}
        )
        item.update(status="completed", arguments=arguments)
        resp.output = [copy.deepcopy(item)]
        self.function_calls.append(copy.deepcopy(item))
        await self.send_event(
            {
                "type": "response.output_item.done",
                "response_id": resp.id,
                "output_index": 0,
                "item": copy.deepcopy(item),
            }
        )
        await self.send_event(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        usage = self._usage(resp, 0, name + arguments)
        self._ctx_text_tokens += tokens(name + arguments)
        await self._finish_response(resp, "completed", usage, None)
