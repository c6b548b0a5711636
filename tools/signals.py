"""Receivers: news about a finished call (calls.hooks.call_event) goes out as its own signed webhook."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from calls.hooks import call_event

from . import post_call, services

log = logging.getLogger(__name__)


@receiver(call_event, dispatch_uid="tools_call_event_webhook")
def call_event_webhook(sender, *, call_pk: int, event: str, **kwargs) -> None:
    """Queue and send (once, here; retries by the worker or `deliver_webhooks`) e.g. `call.analyzed`.

    Sent from the thread that has the news (never the event loop): the attempt is a plain sync call."""
    try:
        pk = services.webhook_delivery_create(call_pk=call_pk, event=event)
        if pk is not None:
            post_call.attempt(pk)
    except Exception:
        log.exception(
            "call %s: could not send the %s webhook; deliver_webhooks retries what was queued", call_pk, event
        )
