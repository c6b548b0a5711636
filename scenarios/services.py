"""Writes of the scenarios app: queue a run, run it (attempt by attempt, with its progress), price it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from assistants.models import Assistant
from assistants.realtime_config import AssistantConfig
from assistants.revisions import revision_id_for_call
from insights.models import ModelPrice
from insights.pricing import PriceMissing, RealtimeUsage, realtime_cost
from scenarios.checks import evaluate
from scenarios.judge import judge
from scenarios.models import Mode, RunStatus, Scenario, ScenarioAttempt, ScenarioRun
from tools.selectors import call_extras

log = logging.getLogger(__name__)


@transaction.atomic
def run_create(
    *, assistant: Assistant, scenarios: list[Scenario] | None = None, mode: str = "", repeat: int | None = None
) -> ScenarioRun:
    """Queue a run of `scenarios` (all of the assistant's when None) against its current revision."""
    chosen = list(scenarios) if scenarios is not None else list(assistant.scenarios.all())
    run = ScenarioRun.objects.create(
        assistant=assistant,
        revision_id=revision_id_for_call(assistant),
        mode=mode,
        repeat=repeat,
        total=sum(repeat or s.repeat for s in chosen),
    )
    run.scenarios.set(chosen)
    return run


def _claim(run_pk: int) -> ScenarioRun | None:
    with transaction.atomic():
        updated = ScenarioRun.objects.filter(pk=run_pk, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=timezone.now()
        )
    return ScenarioRun.objects.get(pk=run_pk) if updated else None


def _realtime_price(model: str, usages: list[dict]) -> Decimal:
    usage = RealtimeUsage(model=model)
    for one in usages:
        usage.add(one)
    row = ModelPrice.objects.filter(model=model).first()
    if row is None:
        return Decimal(0)
    try:
        return realtime_cost(usage, row.as_price())
    except PriceMissing:
        return Decimal(0)


def _text_price(model: str, usages: list[dict]) -> Decimal:
    """A text model's calls: its text prices only (a model without a price row counts as 0)."""
    row = ModelPrice.objects.filter(model=model).first()
    if row is None:
        return Decimal(0)
    cached = sum(u.get("cached_tokens", 0) for u in usages)
    fresh = sum(u.get("input_tokens", 0) for u in usages) - cached
    out = sum(u.get("output_tokens", 0) for u in usages)
    total = Decimal(0)
    for tokens, price in ((fresh, row.text_input), (cached, row.cached_text_input), (out, row.text_output)):
        total += tokens * (price or 0)
    return total / 1_000_000


def attempt_cost(config: AssistantConfig, usage: Any) -> Decimal:
    """What one attempt cost: the assistant's Realtime responses plus the caller's and judge's text model."""
    total = _realtime_price(config.model, usage.realtime)
    by_model: dict[str, list[dict]] = {}
    for one in usage.text:
        by_model.setdefault(one["model"], []).append(one)
    for model, usages in by_model.items():
        total += _text_price(model, usages)
    return total.quantize(Decimal("0.0001"))


def _voice_number(assistant_id: int | None) -> str:
    """The number voice mode dials: one of the assistant's active numbers (it must be active itself)."""
    from assistants.models import PhoneNumber

    number = (
        PhoneNumber.objects.filter(assistant_id=assistant_id, is_active=True, assistant__is_active=True)
        .values_list("number", flat=True)
        .first()
    )
    if number is None:
        raise ValueError(
            "Voice mode phones the assistant on one of its numbers: make the assistant active and give it an "
            "active phone number (under Phone numbers), or choose Text."
        )
    return number


def _conversation(scenario: Scenario, config: AssistantConfig, mode: str):
    if mode == Mode.VOICE:
        from scenarios.voice import VoiceConversation

        return VoiceConversation(scenario, config, to_number=_voice_number(scenario.assistant_id))
    from scenarios.text_mode import TextConversation

    return TextConversation(scenario, config, caller_model=settings.SCENARIO_CALLER_MODEL)


def attempt_execute(*, run: ScenarioRun, scenario: Scenario, index: int, config: AssistantConfig) -> ScenarioAttempt:
    """Hold one conversation, check it, judge it, and keep the attempt (a failure to run is a failed attempt)."""
    mode = run.mode or scenario.mode
    error = ""
    try:
        conversation = _conversation(scenario, config, mode)
    except ValueError as exc:
        return ScenarioAttempt.objects.create(
            run=run, scenario=scenario, index=index, mode=mode, ended_with="error", error=str(exc)
        )
    try:
        outcome = asyncio.run(conversation.run())
    except Exception as exc:
        log.exception("scenario %s attempt %d could not run", scenario.slug, index)
        outcome = conversation.outcome
        error = getattr(exc, "reason", "") or f"{type(exc).__name__}: {exc}"
        outcome.ended_with = outcome.ended_with or "error"
    checks = [c.as_dict() for c in evaluate(scenario, outcome)]
    verdicts: list[dict] = []
    if scenario.judge and not error:
        try:
            verdicts, usage = judge(settings.SCENARIO_JUDGE_MODEL, list(scenario.judge), outcome.transcript)
            conversation.usage.text.append({"model": settings.SCENARIO_JUDGE_MODEL, **usage})
        except Exception as exc:
            error = f"The judge could not answer: {exc}"
    passed = not error and all(c["passed"] for c in checks) and all(v["passed"] for v in verdicts)
    return ScenarioAttempt.objects.create(
        run=run,
        scenario=scenario,
        index=index,
        mode=mode,
        transcript=outcome.transcript,
        tool_calls=outcome.tool_calls,
        ended_with=outcome.ended_with,
        check_results=checks,
        judge_results=verdicts,
        passed=passed,
        error=error,
        cost_usd=attempt_cost(config, conversation.usage) + getattr(conversation, "call_cost", 0),
        call_id=getattr(conversation, "call_pk", None),
    )


def run_execute(*, run_pk: int) -> ScenarioRun | None:
    """Run a queued run to its end (None if someone else took it); progress is saved after each attempt."""
    run = _claim(run_pk)
    if run is None:
        return None
    try:
        assistant = run.assistant
        config = AssistantConfig.from_assistant(assistant)
        config = dataclasses.replace(config, revision_id=run.revision_id, extra=call_extras(assistant))
        for scenario in run.scenarios.order_by("slug"):
            for index in range(1, (run.repeat or scenario.repeat) + 1):
                attempt = attempt_execute(run=run, scenario=scenario, index=index, config=config)
                ScenarioRun.objects.filter(pk=run.pk).update(
                    done=F("done") + 1,
                    passed=F("passed") + int(attempt.passed),
                    cost_usd=F("cost_usd") + attempt.cost_usd,
                )
        ScenarioRun.objects.filter(pk=run.pk).update(status=RunStatus.DONE, finished_at=timezone.now())
    except Exception as exc:
        log.exception("scenario run %s failed", run.pk)
        ScenarioRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED, finished_at=timezone.now(), error=f"{type(exc).__name__}: {exc}"
        )
    run.refresh_from_db()
    return run


def run_in_background(run_pk: int) -> threading.Thread:
    """Without a worker process, a run goes in a thread of the web process."""

    def target() -> None:
        try:
            run_execute(run_pk=run_pk)
        finally:
            close_old_connections()

    thread = threading.Thread(target=target, name=f"scenario-run-{run_pk}", daemon=True)
    thread.start()
    return thread


def run_start(*, run: ScenarioRun) -> str:
    """Hand a queued run to the worker, or to a thread when there is none; a sentence saying which."""
    if settings.SCENARIO_RUNS_IN_WORKER:
        return "The worker will start it within a few seconds."
    run_in_background(run.pk)
    return "It runs in the background now."
