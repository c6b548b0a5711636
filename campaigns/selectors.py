"""Reads for campaigns: progress (admin, dashboard) and the per-contact export."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal

from django.apps import apps
from django.db.models import Count, Sum

from calls.models import Call

from .models import Campaign, Contact, ContactAttempt, ContactStatus, Outcome


@dataclass
class Progress:
    total: int
    finished: int  # done, gave up or skipped
    in_progress: int
    waiting: int
    outcomes: dict[str, int]  # outcome label → contacts whose last outcome it is
    cost: Decimal
    currency: str

    @property
    def percent(self) -> int:
        return round(100 * self.finished / self.total) if self.total else 0


def campaign_progress(campaign: Campaign) -> Progress:
    by_status = dict(
        Contact.objects.filter(campaign=campaign)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    by_outcome = dict(
        Contact.objects.filter(campaign=campaign)
        .exclude(last_outcome="")
        .values_list("last_outcome")
        .annotate(n=Count("pk"))
        .values_list("last_outcome", "n")
    )
    labels = dict(Outcome.choices)
    calls = Call.objects.filter(outbound_request__campaign_attempt__contact__campaign=campaign)
    cost = calls.aggregate(total=Sum("cost"))["total"] or Decimal("0")
    currency = calls.exclude(cost_currency="").values_list("cost_currency", flat=True).first() or "USD"
    total = sum(by_status.values())
    finished = sum(by_status.get(s, 0) for s in (ContactStatus.DONE, ContactStatus.FAILED, ContactStatus.SKIPPED))
    return Progress(
        total=total,
        finished=finished,
        in_progress=by_status.get(ContactStatus.DIALING, 0),
        waiting=by_status.get(ContactStatus.PENDING, 0),
        outcomes={labels[k]: v for k, v in sorted(by_outcome.items()) if k in labels},
        cost=cost,
        currency=currency,
    )


def _analysis_fields() -> tuple[type | None, list[str]]:
    """insights' post-call analysis, when that app has one (it is optional: built separately)."""
    try:
        model = apps.get_model("insights", "CallAnalysis")
    except LookupError:
        return None, []
    names = [
        f.name
        for f in model._meta.concrete_fields
        if not f.is_relation and f.name not in ("id", "created_at", "updated_at")
    ]
    return model, names


def campaign_export_csv(campaign: Campaign) -> str:
    """One row per contact: number, variables, status, attempts, outcome, answered by, the last call."""
    contacts = list(Contact.objects.filter(campaign=campaign).select_related("outbound__call").order_by("pk"))
    variable_names = sorted({k for c in contacts for k in (c.variables or {})})
    analysis_model, analysis_names = _analysis_fields()
    analyses = {}
    if analysis_model is not None:
        call_field = next((f.name for f in analysis_model._meta.concrete_fields if f.related_model is Call), None)
        call_ids = [c.outbound.call_id for c in contacts if c.outbound and c.outbound.call_id]
        if call_field and call_ids:
            for row in analysis_model.objects.filter(**{f"{call_field}__in": call_ids}):
                analyses[getattr(row, f"{call_field}_id")] = row
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "number",
            *variable_names,
            "status",
            "attempts",
            "last_outcome",
            "answered_by",
            "call_started",
            "call_seconds",
            "cost",
        ]
        + [f"analysis_{n}" for n in analysis_names]
    )
    for contact in contacts:
        call = contact.outbound.call if contact.outbound else None
        analysis = analyses.get(call.pk) if call else None
        writer.writerow(
            [contact.number, *[(contact.variables or {}).get(n, "") for n in variable_names]]
            + [
                contact.status,
                contact.attempts,
                contact.last_outcome,
                contact.answered_by,
                call.started_at.isoformat() if call and call.started_at else "",
                int(call.duration.total_seconds()) if call and call.duration else "",
                call.cost if call and call.cost is not None else "",
            ]
            + [getattr(analysis, n, "") if analysis else "" for n in analysis_names]
        )
    return out.getvalue()


def contact_attempts(contact: Contact) -> list[ContactAttempt]:
    return list(contact.attempt_records.select_related("outbound").order_by("created_at"))
