"""Reads of the scenarios app: a run's results per scenario, and the revisions × scenarios matrix."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from scenarios.models import ScenarioAttempt, ScenarioRun


def run_summary(run: ScenarioRun) -> list[dict[str, Any]]:
    """Per scenario: its attempts, how many passed, the pass rate."""
    rows: dict[int, dict[str, Any]] = {}
    for attempt in run.attempts.select_related("scenario").order_by("scenario__slug", "index"):
        row = rows.setdefault(attempt.scenario_id, {"scenario": attempt.scenario, "attempts": [], "passed": 0})
        row["attempts"].append(attempt)
        row["passed"] += attempt.passed
    for row in rows.values():
        row["rate"] = round(100 * row["passed"] / len(row["attempts"]))
    return list(rows.values())


def revision_matrix(assistant_id: int) -> tuple[list[str], list[dict[str, Any]]]:
    """(scenario ids, rows): one row per tested revision (newest first), a pass rate per scenario."""
    cells: dict[tuple[int | None, str], list[int]] = defaultdict(lambda: [0, 0])
    revisions: dict[int | None, Any] = {}
    attempts = ScenarioAttempt.objects.filter(run__assistant_id=assistant_id).select_related(
        "scenario", "run__revision"
    )
    for attempt in attempts:
        key = (attempt.run.revision_id, attempt.scenario.slug)
        cells[key][0] += attempt.passed
        cells[key][1] += 1
        revisions[attempt.run.revision_id] = attempt.run.revision
    slugs = sorted({slug for _, slug in cells})
    rows = []
    for rev_id, revision in sorted(revisions.items(), key=lambda kv: -(kv[1].number if kv[1] else 0)):
        rates = []
        for slug in slugs:
            passed, total = cells.get((rev_id, slug), (0, 0))
            rates.append(round(100 * passed / total) if total else None)
        rows.append({"revision": revision, "rates": rates})
    return slugs, rows


def voice_call_outcome(call_id: str) -> dict[str, Any] | None:
    """What a voice-mode attempt's call did, from the records the server wrote; None while it is still on."""
    from calls.models import Call, CallStatus

    call = Call.objects.filter(call_id=call_id).exclude(status=CallStatus.ACTIVE).first()
    if call is None:
        return None
    transcript = [
        {"role": e.role, "text": e.text}
        for e in call.transcript.order_by("position")
        if e.role in ("caller", "assistant") and e.text
    ]
    tool_calls = []
    for tc in call.tool_calls.all():
        try:
            arguments = json.loads(tc.arguments or "{}")
        except ValueError:
            arguments = tc.arguments
        tool_calls.append({"name": tc.name, "arguments": arguments})
    ended = call.end_reason
    if ended == "transferred":
        ended = f"transfer:{call.transfer_to}"
    return {
        "pk": call.pk,
        "transcript": transcript,
        "tool_calls": tool_calls,
        "ended_with": ended,
        "usage_written": bool(call.usage),  # the server writes usage and cost just after the call's end
        "cost": call.cost,
    }
