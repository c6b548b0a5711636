"""The vocabulary of a live call: what the session, its store, its tools and its observers say to each other.

Everything outside `calls.live` (the database store, the consumer, the extension apps) speaks
these types, never the session class itself, so nothing has to import the state machine to
name what it hands over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from assistants.realtime_config import AssistantConfig

    from .elks import Hello
    from .realtime import RealtimeClient


@dataclass(frozen=True)
class Outcome:
    """How a call ended, as it will be recorded."""

    status: str  # calls.models.CallStatus value
    end_reason: str  # calls.models.EndReason value
    detail: str = ""


CALLER_HANGUP = Outcome("completed", "caller_hangup")
CONNECTION_LOST = Outcome("failed", "connection_lost", "The 46elks connection closed without a bye.")
STAFF_HANGUP = Outcome("completed", "staff_hangup", "Ended from the dashboard.")
SHUTDOWN = Outcome("failed", "server_shutdown", "The server stopped during the call.")


@dataclass(frozen=True)
class Opened:
    """What the store answers to a `hello`: the call's record and assistant, or why it is refused."""

    call_pk: int | None
    assistant: AssistantConfig | None
    refusal: str = ""


@dataclass(frozen=True)
class TranscriptLine:
    position: int
    role: str
    text: str
    item_id: str = ""
    interrupted: bool = False
    offset_ms: int | None = None


class CallerGone(Exception):
    """Sending to 46elks failed: the caller's side of the call is gone."""


Send = Callable[[bytes], None]
"""Sends one message to 46elks now (it must not block); raises CallerGone once the socket is closing."""


class CallStore(Protocol):
    """Where a call's records go; the session calls it, never the ORM."""

    async def open(
        self,
        hello: Hello,
        *,
        refuse: Outcome | None = None,
        on_assistant: Callable[[AssistantConfig], None] | None = None,
    ) -> Opened:
        """Record the call and pick its assistant; with `refuse`, record it as refused for that reason.

        `on_assistant` (optional) is called on the event loop as soon as the assistant is known,
        before the call is recorded.
        """

    def transcript(self, call_pk: int, line: TranscriptLine) -> None:
        """Queue a transcript line (insert or replace by position); must not block."""

    async def finish(self, call_pk: int, outcome: Outcome) -> None:
        """Write the call's remaining lines and how it ended."""


@dataclass(frozen=True)
class SessionSettings:
    openai_url: str
    openai_api_key: str
    hello_timeout: float = 5.0
    setup_timeout: float = 10.0
    bye_timeout: float = 5.0
    # Caller audio kept while OpenAI is connecting: beyond it the oldest is dropped.
    max_buffered_audio_s: float = 10.0
    max_message_bytes: int = 256 * 1024
    # The flood limit on caller messages (see calls.live.guard): a sustained rate above this is cut.
    max_messages_per_second: int = 200
    max_calls_per_process: int = 100
    max_calls_per_number: int = 50


Connect = Callable[..., Awaitable["RealtimeClient"]]


class CallHandle(Protocol):
    """What extensions (tools, insights, dashboard) may read of a live call and ask of it."""

    call_pk: int | None
    hello: Hello | None
    config: AssistantConfig | None
    started_at: float
    outcome: Outcome | None
    finished: asyncio.Event
    tools: ToolRunner | None

    @property
    def openai_received_at(self) -> float | None:
        """When the OpenAI event being handled came off the socket."""

    def add_transcript(self, role: str, text: str) -> None:
        """A line that is not an OpenAI item (a tool call, a note), placed at this point of the call."""

    def end_after_reply(self, outcome: Outcome) -> None:
        """End the call once the assistant's next reply has been heard to the end."""

    def request_hang_up(self, outcome: Outcome) -> None:
        """End the call from our side soon, without waiting for it."""

    async def say_goodbye_and_end(self, outcome: Outcome, instructions: str = ..., deadline: float = 12.0) -> None:
        """Have the assistant say one last thing (`instructions`), let it be heard, then hang up."""


class ToolRunner(Protocol):
    """Runs the functions an assistant may call; built per call once the assistant is known."""

    timeout: float
    """The longest one call of `run` may take before the model is told the tool did not answer."""

    def definitions(self) -> list[dict[str, Any]]:
        """GA function tools for `session.update`."""

    async def run(self, session: CallHandle, name: str, arguments: str, call_id: str) -> str:
        """The function's output for the model (a string, usually JSON). Errors are told to the model."""


ToolRunnerFactory = Callable[[CallHandle], "ToolRunner | None"]
