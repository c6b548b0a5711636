"""The dashboard's pages: the live overview, one call's conversation, the browser test call."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from assistants.models import Assistant
from calls import selectors as call_selectors
from calls.hooks import call_document_parts

from . import charts, extensions, selectors
from .permissions import can_hang_up, can_test_call, can_watch
from .routing_paths import browser_call_path


@dataclass(frozen=True)
class Step:
    title: str
    done: bool
    check: str  # what the check mark means, for people


def elks_websocket_url(request: HttpRequest) -> str:
    """The URL to give the 46elks websocket number: this server as the browser reached it."""
    scheme = "wss" if request.is_secure() else "ws"
    return f"{scheme}://{request.get_host()}/ws/elks/{settings.ELKS_WS_SECRET}/"


def _forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "dashboard/forbidden.html", {"message": message}, status=403)


def _usage_charts() -> tuple[charts.Chart, charts.Chart]:
    days, usage = selectors.daily_usage()
    calls: dict[str, dict] = defaultdict(dict)
    minutes: dict[str, dict] = defaultdict(dict)
    for row in usage:
        calls[row.assistant][row.day] = row.calls
        minutes[row.assistant][row.day] = row.seconds / 60
    colour_of = charts.colours(calls, selectors.NO_ASSISTANT)
    minutes.pop(selectors.NO_ASSISTANT, None)  # refused calls last no time worth a bar
    return (
        charts.stacked_daily(days, dict(calls), colour_of, describe=charts.count),
        charts.stacked_daily(days, dict(minutes), colour_of, describe=charts.minutes),
    )


@staff_member_required
def index(request: HttpRequest) -> HttpResponse:
    """The page people keep open: setup, live calls, recent calls, usage, test calls."""
    if not can_watch(request.user):
        return _forbidden(request, "You need permission to view calls to use the live dashboard.")
    status = selectors.setup_status()
    steps = [
        Step("Get a 46elks account and a phone number", status.number_mapped, "A number reaches an active assistant"),
        Step("Give the server an OpenAI key", status.key_set, "OPENAI_API_KEY is set"),
        Step("Point the 46elks websocket number at this server", status.call_received, "46elks has reached us"),
        Step("Call your number", status.call_received, "A call came in"),
    ]
    calls_chart, minutes_chart = _usage_charts()
    context = {
        "title": "Live dashboard",
        "steps": steps,
        "setup_complete": status.complete,
        "elks_url": elks_websocket_url(request) if request.user.is_superuser else "",
        "active_calls": list(call_selectors.call_list_active()),
        "recent_calls": call_selectors.call_list_recent(),
        "can_hang_up": can_hang_up(request.user),
        "can_test_call": can_test_call(request.user),
        "assistants": selectors.assistants_to_try(),
        "calls_chart": calls_chart,
        "minutes_chart": minutes_chart,
        "add_number_url": reverse("admin:assistants_phonenumber_add"),
        "panels": extensions.panels(request),
    }
    return render(request, "dashboard/index.html", context)


@staff_member_required
def call_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One call's header and conversation, loaded into the dashboard's side panel."""
    if not can_watch(request.user):
        return _forbidden(request, "You need permission to view calls.")
    call = call_selectors.call_get_with_transcript(pk)
    if call is None:
        raise Http404("No such call.")
    # What extensions add to a call's documents (e.g. the after-call analysis), shown under the header.
    parts = call_document_parts(call) if call.status != "active" else {}
    context = {
        "call": call,
        "can_hang_up": can_hang_up(request.user),
        "analysis": parts.get("analysis"),
        "extras": extensions.call_details(call),
    }
    return render(request, "dashboard/_call_detail.html", context)


@staff_member_required
def talk(request: HttpRequest, assistant_id: int) -> HttpResponse:
    """Talk to an assistant from the browser: a test call through the same code as a phone call."""
    if not can_test_call(request.user):
        return _forbidden(request, "You need permission to change assistants to make test calls.")
    assistant = get_object_or_404(Assistant, pk=assistant_id)
    context = {
        "title": f"Talk to {assistant.name}",
        "assistant": assistant,
        "numbers": list(assistant.numbers.all()),
        "socket_path": browser_call_path(assistant.pk),
        "key_set": bool(settings.OPENAI_API_KEY),
    }
    return render(request, "dashboard/talk.html", context)
