"""The worker's job (settings.WORKER_JOBS): start the scenario runs that are waiting, one per round."""

from __future__ import annotations

from scenarios.models import RunStatus, ScenarioRun
from scenarios.services import run_execute


def run_queued_scenarios() -> str:
    run_pk = (
        ScenarioRun.objects.filter(status=RunStatus.QUEUED).order_by("created_at").values_list("pk", flat=True).first()
    )
    if run_pk is None:
        return ""
    run = run_execute(run_pk=run_pk)
    if run is None:
        return ""
    return f"scenario run {run.pk}: {run.passed}/{run.total} passed ({run.get_status_display()})"
