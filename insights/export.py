"""Calls with their analysis as CSV (one column per extracted field) or JSON Lines, streamed.

Rows are read in chunks (`iterator(chunk_size)`) and written as they are made, so an export of
100k calls never holds them all in memory (bench/analysis.py measures it).
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from assistants.analysis_schema import field_order
from assistants.models import Assistant
from calls.models import Call

CHUNK = 2000
BASE_COLUMNS = [
    "id",
    "callid",
    "started_at",
    "assistant",
    "direction",
    "from",
    "to",
    "duration_seconds",
    "status",
    "end_reason",
    "cost",
    "cost_currency",
    "analysis_status",
    "summary",
    "outcome",
    "reason",
]


class _Echo:
    def write(self, value: str) -> str:
        return value


def cell(value: Any) -> str:
    """A field's value in a spreadsheet cell: yes/no for booleans, JSON for lists and objects."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def field_columns(calls: QuerySet) -> list[str]:
    """The extracted fields of the assistants these calls belong to, in their schemas' order."""
    ids = calls.order_by().values_list("assistant_id", flat=True).distinct()
    columns: list[str] = []
    for schema in Assistant.objects.filter(pk__in=ids).order_by("pk").values_list("analysis_schema", flat=True):
        for name in field_order(schema):
            if name not in columns:
                columns.append(name)
    return columns


def _records(calls: QuerySet) -> Iterator[dict[str, Any]]:
    qs = calls.select_related("assistant", "analysis").order_by("started_at", "pk")
    for call in qs.iterator(chunk_size=CHUNK):
        a = getattr(call, "analysis", None)
        yield {
            "id": call.pk,
            "callid": call.call_id,
            "started_at": call.started_at.isoformat(),
            "assistant": call.assistant.name if call.assistant else None,
            "direction": call.direction,
            "from": call.from_number,
            "to": call.to_number,
            "duration_seconds": call.duration.total_seconds() if call.duration is not None else None,
            "status": call.status,
            "end_reason": call.end_reason or None,
            "cost": str(call.cost) if call.cost is not None else None,
            "cost_currency": call.cost_currency or None,
            "analysis": a.as_json() if a else None,
        }


def csv_rows(calls: QuerySet) -> Iterator[str]:
    fields = field_columns(calls)
    writer = csv.writer(_Echo())
    yield writer.writerow(BASE_COLUMNS + fields)
    for record in _records(calls):
        a = record.pop("analysis") or {}
        data = a.get("data") or {}
        base = [record[c] for c in BASE_COLUMNS[:12]]
        base += [a.get("status"), a.get("summary"), a.get("outcome"), a.get("reason")]
        yield writer.writerow([cell(v) for v in base] + [cell(data.get(f)) for f in fields])


def jsonl_rows(calls: QuerySet) -> Iterator[str]:
    for record in _records(calls):
        yield json.dumps(record, ensure_ascii=False) + "\n"


def _take(rows: Iterator[str], n: int) -> str:
    return "".join(itertools.islice(rows, n))


async def _streamed(rows: Iterator[str], batch: int = 500) -> AsyncIterator[str]:
    """The rows as an async iterator. Under ASGI, Django reads a sync iterator into a list before
    sending it; this hands over `batch` rows at a time, made in one thread (the database cursor's)."""
    take = sync_to_async(_take, thread_sensitive=True)
    while True:
        text = await take(rows, batch)
        if not text:
            return
        yield text


def streaming_response(calls: QuerySet, kind: str) -> StreamingHttpResponse:
    rows: Iterator[str] = csv_rows(calls) if kind == "csv" else jsonl_rows(calls)
    content_type = "text/csv; charset=utf-8" if kind == "csv" else "application/x-ndjson; charset=utf-8"
    response = StreamingHttpResponse(_streamed(rows), content_type=content_type)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="calls-{stamp}.{"csv" if kind == "csv" else "jsonl"}"'
    return response


class ExportError(ValueError):
    """A filter the export cannot use; the message says which and how to write it."""


def _date(value: str, name: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ExportError(f"'{name}' must be a date or time like 2026-12-01 or 2026-12-01T08:00.") from None
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def filtered_calls(*, start: str = "", end: str = "", assistant: str = "") -> QuerySet:
    """Customers' calls (test calls left out) started in [from, to) (a bare date `to` includes that whole day),
    of one assistant (id or name)."""
    calls = Call.objects.filter(is_test=False)
    since, until = _date(start, "from"), _date(end, "to")
    if since is not None:
        calls = calls.filter(started_at__gte=since)
    if until is not None:
        if len(end) <= 10:
            until += dt.timedelta(days=1)
        calls = calls.filter(started_at__lt=until)
    if assistant:
        found = Assistant.objects.filter(pk=int(assistant)) if assistant.isdigit() else None
        found = found if found is not None and found.exists() else Assistant.objects.filter(name=assistant)
        pk = found.values_list("pk", flat=True).first()
        if pk is None:
            raise ExportError(f"No assistant {assistant!r}.")
        calls = calls.filter(assistant_id=pk)
    return calls
