"""The ToolRunner of a call: the functions the model is offered, and what happens when it calls one.

Built when the call's assistant is known (`settings.CALL_TOOL_RUNNER`). It reads no database on
the event loop: the webhook tools come with the call's start (`config.extra`), a tool's URL and
secret are read in a worker thread when it is called, and every tool call is recorded by a
background task, so the model gets its answer without waiting for the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from calls.db import run_db

from . import builtins, selectors, services
from .schema import argument_errors, compile_validator
from .webhook_client import call_webhook, elapsed_ms, truncate

if TYPE_CHECKING:
    from calls.live.types import CallHandle

log = logging.getLogger(__name__)

TRANSCRIPT_CHARS = 400


@dataclass
class _Webhook:
    id: int
    name: str
    definition: dict[str, Any]
    timeout: float
    validator: Any


@dataclass
class _Record:
    """One tool call as it will be stored and shown in the transcript."""

    name: str
    kind: str
    openai_call_id: str
    arguments: str
    status: str = "error"
    result: str = ""
    error: str = ""
    http_status: int | None = None
    duration_ms: int | None = None
    shown: str = ""


class CallTools:
    """The tools of one call."""

    def __init__(self, session: CallHandle, webhooks: list[dict[str, Any]]) -> None:
        self.session = session
        self.builtins = builtins.enabled(session.config)
        self.webhooks: dict[str, _Webhook] = {}
        for spec in webhooks:
            name = spec["name"]
            if name in self.builtins or name in self.webhooks:
                continue
            try:
                validator = compile_validator(spec["parameters"])
            except Exception:
                log.exception("webhook tool %s has an unusable schema; not offered", name)
                continue
            definition = {
                "type": "function",
                "name": name,
                "description": spec["description"],
                "parameters": spec["parameters"],
            }
            self.webhooks[name] = _Webhook(spec["id"], name, definition, float(spec["timeout"]), validator)
        self._writes: set[asyncio.Task] = set()
        # The longest a tool may run: the setting, or a webhook's own timeout and a second more.
        self.timeout = max(settings.CALL_TOOL_TIMEOUT, self.longest_timeout() + 1.0)

    def definitions(self) -> list[dict[str, Any]]:
        """GA function tools for `session.update`: the built-ins first, then the webhooks."""
        return [definition for definition, _ in self.builtins.values()] + [w.definition for w in self.webhooks.values()]

    def longest_timeout(self) -> float:
        return max((w.timeout for w in self.webhooks.values()), default=0.0)

    async def run(self, session: CallHandle, name: str, arguments: str, call_id: str) -> str:
        """Called by the session off the audio path; the returned text is the model's function output."""
        kind = "builtin" if name in self.builtins else "webhook" if name in self.webhooks else ""
        record = _Record(name=name, kind=kind, openai_call_id=call_id, arguments=arguments)
        started = time.monotonic()
        try:
            output = await self._run(record)
        except asyncio.CancelledError:
            record.status, record.error = "timeout", "Stopped: the call's tool time limit was reached."
            raise
        except Exception as exc:
            log.exception("call %s: tool %s failed", session.hello.callid, name)
            record.status, record.error = "error", f"{type(exc).__name__}: {exc}"[:500]
            output = json.dumps({"error": f"The {name} tool failed. Tell the caller it did not work."})
            record.result = output
        finally:
            record.duration_ms = elapsed_ms(started)
            self._remember(record)
        return output

    async def _run(self, record: _Record) -> str:
        name = record.name
        try:
            arguments = json.loads(record.arguments or "{}")
        except ValueError as exc:
            return self._refuse(record, "invalid_arguments", f"The arguments were not valid JSON ({exc}).")
        if not isinstance(arguments, dict):
            return self._refuse(record, "invalid_arguments", "The arguments must be a JSON object.")
        mocks = self.session.config.extra.get("tool_mocks") or {}
        if name in mocks:  # a test call's fixed answer (e.g. a voice-mode scenario's), instead of running the tool
            record.status = "ok"
            record.result = json.dumps(mocks[name], ensure_ascii=False)
            return record.result
        builtin = self.builtins.get(name)
        if builtin is not None:
            result = await builtin[1](self.session, arguments)
            record.status, record.result, record.error = result.status, result.output, result.error
            record.shown = result.shown
            return result.output
        webhook = self.webhooks.get(name)
        if webhook is None:
            return self._refuse(record, "unknown_tool", f"There is no tool called {name!r}.")
        problems = argument_errors(webhook.validator, arguments)
        if problems:
            return self._refuse(record, "invalid_arguments", "The arguments do not fit: " + "; ".join(problems))
        endpoint = await run_db(selectors.webhook_endpoint)(webhook.id)
        if endpoint is None:
            return self._refuse(record, "unknown_tool", f"The {name} tool was switched off during the call.")
        outcome = await call_webhook(
            name=name,
            url=endpoint.url,
            method=endpoint.method,
            timeout=min(endpoint.timeout, webhook.timeout),
            arguments=arguments,
            context=self.context(),
            header_name=endpoint.header_name,
            header_value=endpoint.header_value,
        )
        record.status, record.error, record.http_status = outcome.status, outcome.error, outcome.http_status
        record.result = outcome.body if outcome.ok else outcome.output
        return outcome.output

    @staticmethod
    def _refuse(record: _Record, status: str, message: str) -> str:
        output = json.dumps({"error": message}, ensure_ascii=False)
        record.status, record.result, record.error = status, output, message
        return output

    def context(self) -> dict[str, Any]:
        """Who is calling, sent along with every webhook tool's arguments."""
        session, config = self.session, self.session.config
        hello = session.hello
        return {
            "id": session.call_pk,
            "callid": hello.callid if hello else None,
            "from": hello.from_number if hello else None,
            "to": hello.to_number if hello else None,
            "direction": config.extra.get("direction", "inbound"),
            "assistant": {"id": config.id, "name": config.name},
        }

    def _remember(self, record: _Record) -> None:
        """Show the tool call in the transcript now; store it in the background."""
        shown = f"{record.name} {truncate(record.arguments or '{}', 200)} → "
        if record.status == "ok" and record.shown:
            shown = truncate(record.shown, TRANSCRIPT_CHARS * 2)
        elif record.status == "ok":
            shown += truncate(record.result, TRANSCRIPT_CHARS)
        else:
            shown += f"{record.status}: {truncate(record.error, TRANSCRIPT_CHARS)}"
        self.session.add_transcript("tool", f"{shown} ({record.duration_ms} ms)")
        if self.session.call_pk is None:
            return
        task = asyncio.ensure_future(self._write(record))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, record: _Record) -> None:
        try:
            await run_db(services.tool_call_record)(
                call_pk=self.session.call_pk,
                name=record.name,
                kind=record.kind,
                openai_call_id=record.openai_call_id,
                arguments=record.arguments,
                status=record.status,
                result=record.result,
                error=record.error,
                http_status=record.http_status,
                duration_ms=record.duration_ms,
            )
        except Exception:
            log.exception("call %s: could not record the %s tool call", self.session.call_pk, record.name)

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait for the tool calls still being written (before the call's document is built)."""
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=timeout)


def tool_runner(session: CallHandle) -> CallTools | None:
    """`settings.CALL_TOOL_RUNNER`: the call's tools, or None when the assistant has none."""
    config = session.config
    if config is None:
        return None
    runner = CallTools(session, config.extra.get("webhook_tools") or [])
    if not runner.builtins and not runner.webhooks:
        return None
    return runner
