"""After-call analysis: a text model reads a finished call and reports a summary, an outcome and fields.

It runs after the call, never on the audio path: in the worker (`analyse_pending_calls`, a
WORKER_JOBS job) and, with ANALYSIS_IN_WEB on, in a thread of the process that served the call
(the `call_analyser` observer), whichever takes it first. Its failure is stored on the analysis,
never on the call; its tokens are priced into the call's cost.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from assistants.analysis_schema import ordered_schema
from calls.db import run_db
from calls.hooks import call_event
from calls.live.observers import CallObserver
from calls.models import Call, EndReason

from . import analysis_services as store
from .llm import StructuredResponseError, structured_response
from .models import AnalysisOutcome, CallAnalysis
from .pricing import TextUsage
from .services import call_analysis_cost_add

if TYPE_CHECKING:
    from assistants.models import Assistant
    from calls.live.types import CallHandle, Outcome

log = logging.getLogger(__name__)

ROLE_NAMES = {"caller": "Caller", "assistant": "Assistant", "tool": "Tool call"}
WEB_THREADS = 2
_queue: queue.SimpleQueue[int] = queue.SimpleQueue()
_threads: list[threading.Thread] = []
_lock = threading.Lock()


def analysis_schema(assistant: Assistant) -> dict[str, Any]:
    """The strict JSON Schema the model answers in: summary, outcome + reason, data (as set up)."""
    properties: dict[str, Any] = {}
    if assistant.analysis_summary_enabled:
        properties["summary"] = {"type": "string", "description": "A short summary of the call."}
    if assistant.analysis_success_goal.strip():
        properties["outcome"] = {"type": "string", "enum": [o.value for o in AnalysisOutcome]}
        properties["reason"] = {"type": "string", "description": "One line: why this outcome."}
    if assistant.analysis_schema:
        properties["data"] = ordered_schema(assistant.analysis_schema)
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def analysis_instructions(assistant: Assistant) -> str:
    parts = [
        "You analyse a finished phone call between a caller and an AI phone assistant. Read the call "
        "and answer in the JSON format given. Use only what the transcript says."
    ]
    if assistant.analysis_summary_enabled:
        extra = assistant.analysis_summary_instructions.strip()
        parts.append("summary: a short summary of the call." + (f" {extra}" if extra else ""))
    goal = assistant.analysis_success_goal.strip()
    if goal:
        parts.append(
            f'outcome: "success" if the call reached this goal: «{goal}»; "failure" if it did not; '
            '"unclear" if the transcript does not tell. reason: one line saying why.'
        )
    if assistant.analysis_schema:
        parts.append("data: the facts asked for, as the caller gave them; null for anything not said.")
    return "\n".join(parts)


def call_input(call: Call) -> str:
    """The call as the model reads it: how it went and ended, then every line (tool calls included)."""
    ended = dict(EndReason.choices).get(call.end_reason, call.end_reason or "unknown")
    head = [
        f"Direction: {call.direction}",
        f"Started: {timezone.localtime(call.started_at):%Y-%m-%d %H:%M %Z}",
        f"Duration: {call.duration_display}",
        f"How it ended: {ended}" + (f" ({call.end_detail})" if call.end_detail else ""),
    ]
    if call.transfer_to:
        head.append(f"Transferred to: {call.transfer_to}")
    lines = [
        f"{ROLE_NAMES.get(e.role, e.role)}: {e.text}{' [interrupted]' if e.interrupted else ''}"
        for e in call.transcript.order_by("position")
    ]
    return "\n".join([*head, "", "Transcript:", *(lines or ["(nothing was said)"])])


def _result(answer: dict[str, Any]) -> store.AnalysisResult:
    outcome = str(answer.get("outcome") or "")
    if outcome and outcome not in AnalysisOutcome.values:
        raise StructuredResponseError(f"The model's outcome {outcome!r} is not success, failure or unclear.")
    data = answer.get("data") or {}
    if not isinstance(data, dict):
        raise StructuredResponseError("The model's extracted fields are not a JSON object.")
    return store.AnalysisResult(
        summary=str(answer.get("summary") or ""), outcome=outcome, reason=str(answer.get("reason") or ""), data=data
    )


def analyse(pk: int) -> CallAnalysis | None:
    """Run one waiting analysis (sync: a worker thread or the worker process). None: taken by another."""
    if not store.call_analysis_claim(pk=pk):
        return None
    analysis = CallAnalysis.objects.select_related("call__assistant").get(pk=pk)
    call, model = analysis.call, settings.ANALYSIS_MODEL
    usage: dict[str, int] = {}
    try:
        if call.assistant is None:
            raise StructuredResponseError("The call's assistant was deleted: nothing says what to analyse.")
        answer, usage = structured_response(
            model,
            analysis_instructions(call.assistant),
            call_input(call),
            analysis_schema(call.assistant),
            name="call_analysis",
        )
        result = _result(answer)
    except StructuredResponseError as exc:
        usage = usage or exc.usage
        cost = _add_cost(call.pk, model, usage)
        store.call_analysis_failed(pk=pk, model=model, error=exc.reason, usage=usage, cost=cost)
        log.warning("call %s: analysis failed: %s", call.call_id, exc.reason)
    else:
        cost = _add_cost(call.pk, model, usage)
        store.call_analysis_done(pk=pk, model=model, result=result, usage=usage, cost=cost)
        log.info("call %s: analysed (%s)", call.call_id, result.outcome or "no outcome asked")
    call_event.send(sender=CallAnalysis, call_pk=call.pk, event="call.analyzed")
    return CallAnalysis.objects.get(pk=pk)


def _add_cost(call_pk: int, model: str, usage: dict[str, int]):
    tokens = TextUsage(model=model, **{k: usage.get(k, 0) for k in ("input_tokens", "cached_tokens", "output_tokens")})
    if not tokens.has_tokens:
        return None
    try:
        return call_analysis_cost_add(call_pk=call_pk, analysis=tokens)
    except Exception:
        log.exception("call %s: could not add the analysis' cost %s", call_pk, tokens.as_dict())
        return None


def analyse_pending_calls() -> str:
    """WORKER_JOBS job: run the analyses that are waiting."""
    done = [a for a in (analyse(pk) for pk in store.pending_analyses()) if a is not None]
    if not done:
        return ""
    failed = sum(1 for a in done if a.status == "failed")
    return f"analysed {len(done)} call(s)" + (f", {failed} failed" if failed else "")


def _run_in_thread(pk: int) -> None:
    close_old_connections()
    try:
        analyse(pk)
    except Exception:
        log.exception("analysis %s crashed; the worker's job or 'Analyse again' can run it", pk)
    finally:
        close_old_connections()


def schedule(pk: int) -> None:
    """Analyse in a background thread of this process (ANALYSIS_IN_WEB): two at a time, the rest queue.

    Daemon threads, so a restarting server never waits for a slow model: an analysis cut off
    stays "running" until the worker's job takes it again (after 15 minutes) or "Analyse again"."""
    with _lock:
        if not _threads:
            for i in range(WEB_THREADS):
                thread = threading.Thread(target=_serve, name=f"analysis-{i}", daemon=True)
                thread.start()
                _threads.append(thread)
    _queue.put(pk)


def _serve() -> None:
    while True:
        _run_in_thread(_queue.get())


class CallAnalyser(CallObserver):
    async def ended(self, session: CallHandle, outcome: Outcome) -> None:
        """Queue the analysis (before the after-call webhook reads the call), then run it here or leave it
        to the worker."""
        if session.call_pk is None:
            return
        try:
            pk = await run_db(store.call_analysis_queue)(call_pk=session.call_pk)
        except Exception:
            log.exception("call %s: could not queue its analysis", session.call_pk)
            return
        if pk is not None and settings.ANALYSIS_IN_WEB:
            schedule(pk)


def call_analyser(session: CallHandle) -> CallAnalyser | None:
    """`settings.CALL_OBSERVERS` factory: every answered call may be analysed (its assistant decides)."""
    return CallAnalyser() if session.config is not None else None


def call_document_analysis(call: Any) -> dict[str, Any]:
    """`settings.CALL_DOCUMENT_PARTS`: the `analysis` object in the API's and the webhook's call documents."""
    return {"analysis": store.analysis_json(call.pk)}
