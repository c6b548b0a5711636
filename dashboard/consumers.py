"""The dashboard's WebSockets: the live view of calls, and the browser test call.

Both sit behind AuthMiddlewareStack and AllowedHostsOriginValidator (see routing.py) and refuse
anyone who is not allowed before accepting the socket.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import orjson
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from assistants.models import Assistant
from calls import selectors as call_selectors
from calls.consumers import ElksCallConsumer, call_group, call_store
from calls.db import run_db
from calls.live.elks import Hello
from calls.live.types import CallerGone, Opened, Outcome, TranscriptLine

from . import rendering
from .broadcast import GROUP
from .permissions import can_hang_up, can_test_call, can_watch

log = logging.getLogger(__name__)


def _rights(user: Any) -> tuple[bool, bool]:
    return can_watch(user), can_hang_up(user)


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    """One open dashboard: call changes and transcript lines from every process, and hang-up."""

    may_watch = False
    may_hang_up = False
    _joined = False

    async def connect(self) -> None:
        """Called on the handshake: only staff who may see calls get in."""
        user = self.scope.get("user")
        self.may_watch, self.may_hang_up = await run_db(_rights)(user)
        if not self.may_watch:
            log.info("refused a dashboard socket for %s", getattr(user, "username", None) or "an anonymous user")
            await self.close()
            return
        self._render_lock = asyncio.Lock()
        await self.channel_layer.group_add(GROUP, self.channel_name)
        self._joined = True
        await self.accept()
        async with self._render_lock:
            await self.send_json(await run_db(rendering.snapshot)(can_hang_up=self.may_hang_up))

    async def disconnect(self, code: int) -> None:
        """Called when the socket closes."""
        if self._joined:
            self._joined = False
            await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def dashboard_call(self, event: dict[str, Any]) -> None:
        """Called (through the layer) when a call starts or ends, in any process."""
        async with self._render_lock:  # one row at a time, so a stale render never follows a fresh one
            try:
                update = await run_db(rendering.call_update)(event["call"], can_hang_up=self.may_hang_up)
            except Exception as exc:  # the database is briefly away: the next snapshot catches up
                log.warning("dashboard: could not show call %s: %s", event.get("call"), exc)
                return
            if update is not None:
                await self.send_json({**update, "event": event.get("event")})

    async def dashboard_transcript(self, event: dict[str, Any]) -> None:
        """Called (through the layer) for each transcript line of any call."""
        await self.send_json(
            {
                "type": "line",
                "call": event["call"],
                "position": event["position"],
                "role": event["role"],
                "text": event["text"],
                "interrupted": event.get("interrupted", False),
                "offset_ms": event.get("offset_ms"),
            }
        )

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return orjson.loads(text_data)
        except orjson.JSONDecodeError:
            return None

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called for each request from the page: `hangup`, or `refresh` (calls nobody announced, e.g. refused)."""
        action = content.get("action") if isinstance(content, dict) else None
        if action == "refresh":
            async with self._render_lock:
                snapshot = await run_db(rendering.snapshot)(can_hang_up=self.may_hang_up)
                await self.send_json({**snapshot, "refresh": True})
            return
        if action != "hangup":
            await self.send_json({"type": "error", "message": "The dashboard sent a request the server does not know."})
            return
        call = content.get("call")
        if not isinstance(call, int) or isinstance(call, bool):
            await self.send_json({"type": "error", "message": "Which call? The request named none."})
            return
        await self.hang_up(call, now=content.get("now") is True)

    async def hang_up(self, call_pk: int, *, now: bool = False) -> None:
        """Ask whichever process holds the call to end it: after a short goodbye, or at once (`now`)."""

        async def answer(ok: bool, message: str) -> None:
            await self.send_json({"type": "hangup", "call": call_pk, "ok": ok, "message": message})

        if not self.may_hang_up:
            await answer(False, "You are not allowed to end calls. An administrator can give you “Can change call”.")
            return
        if not await run_db(call_selectors.call_is_active)(call_pk):
            await answer(False, "This call has already ended.")
            return
        username = self.scope["user"].get_username()
        log.info("call %s: %s asked to hang up%s from the dashboard", call_pk, username, " now" if now else "")
        detail = f"Ended {'at once ' if now else ''}from the dashboard by {username}."
        await self.channel_layer.group_send(call_group(call_pk), {"type": "call.hangup", "detail": detail, "now": now})
        if now:
            await answer(True, "Hanging up now: the line closes at once.")
        else:
            await answer(True, "Hanging up: the assistant says goodbye, then the line closes.")


class BrowserCallStore:
    """The process's call store, opening each call as a test call of one given assistant."""

    def __init__(self, store: Any, assistant_id: int, on_open: Any = None) -> None:
        self.store = store
        self.assistant_id = assistant_id
        self.on_open = on_open

    async def open(self, hello: Hello, **kwargs: Any) -> Opened:
        opened = await self.store.open(hello, assistant_id=self.assistant_id, is_test=True, **kwargs)
        if self.on_open is not None and opened.call_pk is not None:
            # Before the session goes on in this same step (and asks for the greeting): the page
            # hears which call it is before any of its audio.
            self.on_open(opened.call_pk)
        return opened

    def transcript(self, call_pk: int, line: TranscriptLine) -> None:
        self.store.transcript(call_pk, line)

    async def finish(self, call_pk: int, outcome: Outcome) -> None:
        await self.store.finish(call_pk, outcome)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _test_call_target(user: Any, assistant_id: int) -> str | None:
    """The `to` of a test call: the assistant's first number (or a stand-in); None if not allowed."""
    if not can_test_call(user):
        return None
    assistant = Assistant.objects.filter(pk=assistant_id).first()
    if assistant is None:
        return None
    number = assistant.numbers.filter(is_active=True).values_list("number", flat=True).first()
    return number or "browser-test"


class BrowserCallConsumer(ElksCallConsumer):
    """A test call from a staff member's browser, which speaks 46elks' protocol itself.

    Everything after the handshake is a phone call's code path: the same CallSession, session
    settings, barge-in, transcript and records; only the hello is made here, from the logged-in
    user and the assistant in the URL, and the call is recorded as a test call.
    """

    async def connect(self) -> None:
        """Called on the handshake: staff who may edit assistants, for an assistant that exists."""
        user = self.scope.get("user")
        assistant_id = self.scope["url_route"]["kwargs"]["assistant_id"]
        to = await run_db(_test_call_target)(user, assistant_id)
        if to is None:
            log.info("refused a browser test call to assistant %s", assistant_id)
            await self.close()
            return
        callid = f"browser-{uuid.uuid4().hex}"

        def tell_the_page(call_pk: int) -> None:
            # Not a 46elks message: tells the page which call to follow on the dashboard socket.
            try:
                self._send_message(orjson.dumps({"t": "info", "call": call_pk, "callid": callid}))
            except CallerGone:
                pass  # the page is gone already; its disconnect ends the call

        self.start_session(store=BrowserCallStore(call_store(), assistant_id, on_open=tell_the_page))
        await self.accept()
        hello = {"t": "hello", "callid": callid, "from": f"browser:{user.get_username()}"[:32], "to": to}
        self.session.on_message(orjson.dumps(hello))
