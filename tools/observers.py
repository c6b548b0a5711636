"""The call observer of the tools app: at the end of a call, finish recording its tool calls and
queue the after-call webhook."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from calls.db import run_db
from calls.live.observers import CallObserver

from . import post_call, services
from .runner import CallTools

if TYPE_CHECKING:
    from calls.live.types import CallHandle, Outcome

log = logging.getLogger(__name__)


class ToolsObserver(CallObserver):
    def __init__(self, post_call_webhook: bool) -> None:
        self.post_call_webhook = post_call_webhook

    async def ended(self, session: CallHandle, outcome: Outcome) -> None:
        """Wait for the tool calls being written; record the webhook delivery (so a restart loses
        nothing), then send it in the background."""
        if isinstance(session.tools, CallTools):
            await session.tools.flush()
        if session.call_pk is None or not self.post_call_webhook:
            return
        try:
            pk = await run_db(services.webhook_delivery_create)(call_pk=session.call_pk)
        except Exception:
            log.exception("call %s: could not queue the after-call webhook", session.call_pk)
            return
        if pk is not None:
            post_call.schedule(pk)


def tools_observer(session: CallHandle) -> ToolsObserver | None:
    """`settings.CALL_OBSERVERS` factory: for calls with tools or an after-call webhook."""
    config = session.config
    post_call_webhook = bool(config is not None and config.extra.get("post_call_webhook"))
    if not post_call_webhook and not isinstance(session.tools, CallTools):
        return None
    return ToolsObserver(post_call_webhook)
