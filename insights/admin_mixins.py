"""What the insights app adds to the call pages in admin: cost and reply-time columns and sections,
and the recording player."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from assistants.admin_helpers import insert_fieldsets
from calls.models import Call

from .models import TurnLatency


def slow_threshold_ms() -> int:
    return int(getattr(settings, "SLOW_CALL_P95_MS", 1500))


def money(amount: Decimal | None, currency: str) -> str:
    """$0.1234 for dollars, 0.1234 SEK for the rest; – when unknown."""
    if amount is None:
        return "–"
    if (currency or "USD").upper() == "USD":
        return f"${amount:.4f}"
    return f"{amount:.4f} {currency}"


class SlowCallFilter(admin.SimpleListFilter):
    title = "reply time"
    parameter_name = "reply_time"

    def lookups(self, request, model_admin):
        limit = slow_threshold_ms()
        return (
            ("slow", f"Slow (p95 over {limit} ms)"),
            ("ok", f"Quick (p95 up to {limit} ms)"),
            ("none", "Not measured"),
        )

    def queryset(self, request, queryset):
        limit = slow_threshold_ms()
        if self.value() == "slow":
            return queryset.filter(latency_p95_ms__gt=limit)
        if self.value() == "ok":
            return queryset.filter(latency_p95_ms__lte=limit)
        if self.value() == "none":
            return queryset.filter(latency_p95_ms__isnull=True)
        return queryset


class CallInsightsColumns:
    """Cost, reply-time and recording displays of a call, for any admin of calls."""

    @admin.display(description="cost", ordering="cost")
    def cost_col(self, obj: Call) -> str:
        return money(obj.cost, obj.cost_currency)

    @admin.display(description="reply time (p95)", ordering="latency_p95_ms")
    def reply_time_col(self, obj: Call) -> str:
        p95 = obj.latency_p95_ms
        if p95 is None:
            return "–"
        if p95 > slow_threshold_ms():
            return format_html(
                '<span style="color:#ba2121;font-weight:bold" title="Slower than {} ms: see the call page">'
                "⚠ {} ms</span>",
                slow_threshold_ms(),
                p95,
            )
        return f"{p95} ms"

    @admin.display(description="cost breakdown")
    def cost_detail(self, obj: Call) -> str:
        usage = obj.usage or {}
        cost = usage.get("cost") or {}
        if not usage:
            return "Not recorded (the call was not answered, or it is still going on)."
        rt = usage.get("realtime") or {}
        tr = usage.get("transcription") or {}
        rows = [
            (
                f"Voice model {rt.get('model') or '?'} ({rt.get('responses', 0)} replies)",
                f"text in {rt.get('input_text_tokens', 0)} (cached {rt.get('cached_text_tokens', 0)}), "
                f"audio in {rt.get('input_audio_tokens', 0)} (cached {rt.get('cached_audio_tokens', 0)}), "
                f"text out {rt.get('output_text_tokens', 0)}, audio out {rt.get('output_audio_tokens', 0)} tokens",
                _part(cost, "realtime"),
            )
        ]
        if tr:
            rows.append(
                (
                    f"Transcription {tr.get('model') or '?'} ({tr.get('items', 0)} turns)",
                    f"{tr.get('seconds', 0):.1f} s of audio; tokens: text in {tr.get('input_text_tokens', 0)}, "
                    f"audio in {tr.get('input_audio_tokens', 0)}, text out {tr.get('output_text_tokens', 0)}",
                    _part(cost, "transcription"),
                )
            )
        an = usage.get("analysis") or {}
        if an:
            rows.append(
                (
                    f"After-call analysis {an.get('model') or '?'}",
                    f"text in {an.get('input_tokens', 0)} (cached {an.get('cached_tokens', 0)}), "
                    f"text out {an.get('output_tokens', 0)} tokens",
                    _part(cost, "analysis"),
                )
            )
        table = format_html(
            "<table><tr><th>what</th><th>usage</th><th>cost ({})</th></tr>{}</table>",
            cost.get("currency") or obj.cost_currency,
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )
        missing = cost.get("missing_prices") or []
        if missing:
            url = reverse("admin:insights_modelprice_changelist")
            table = format_html(
                '{}<p style="color:#ba2121">Not included, no price: {}. Add it under <a href="{}">Model prices</a>, '
                "then run <code>manage.py recompute_call_costs</code>.</p>",
                table,
                "; ".join(missing),
                url,
            )
        return table

    @admin.display(description="reply times")
    def reply_times(self, obj: Call) -> str:
        turns = list(TurnLatency.objects.filter(call=obj).order_by("turn"))
        if not turns:
            return "No turns measured (the caller never spoke, or the call is still going on)."
        summary = format_html(
            "<p>Median {} ms, 95th percentile {} ms over {} turns. {}</p>",
            obj.latency_p50_ms,
            obj.latency_p95_ms,
            len(turns),
            "Slow call." if (obj.latency_p95_ms or 0) > slow_threshold_ms() else "",
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    t.turn,
                    f"{t.at_ms / 1000:.1f} s",
                    t.reply_ms,
                    "–" if t.bridge_ms is None else f"{t.bridge_ms:.2f}",
                )
                for t in turns
            ),
        )
        return format_html(
            "{}<table><tr><th>turn</th><th>caller stopped at</th><th>reply time (ms)</th>"
            "<th>this server's share (ms)</th></tr>{}</table>",
            summary,
            rows,
        )

    @admin.display(description="recording")
    def recording_player(self, obj: Call) -> str:
        if obj.recording:
            url = reverse("insights:recording", args=[obj.pk])
            return format_html(
                '<audio controls preload="none" src="{}" style="width:100%;max-width:40em"></audio>'
                '<br><a href="{}">Download</a> · caller on the left, assistant on the right',
                url,
                url,
            )
        if obj.assistant is not None and not obj.assistant.record_calls:
            return "Not recorded: recording is off for this assistant."
        return "No recording (not recorded, still being written, or deleted after its retention period)."


class CallInsightsAdminMixin(CallInsightsColumns):
    """For CallAdmin (settings.CALL_ADMIN_EXTENSIONS): cost and reply-time columns, a slow-call filter,
    and the cost, reply-time and recording sections of the call page."""

    insights_readonly_fields = ("cost_col", "cost_detail", "reply_time_col", "reply_times", "recording_player")

    def get_list_display(self, request):
        return (*super().get_list_display(request), "cost_col", "reply_time_col")

    def get_list_filter(self, request):
        return (*super().get_list_filter(request), SlowCallFilter)

    def get_fieldsets(self, request, obj=None):
        sections = (
            ("Cost and reply time", {"fields": ("cost_col", "cost_detail", "reply_times")}),
            ("Recording", {"fields": ("recording_player",)}),
        )
        return insert_fieldsets(super().get_fieldsets(request, obj), sections, before="Assistant settings used")

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), *self.insights_readonly_fields)


def _part(cost: dict, name: str) -> str:
    value = (cost.get("parts") or {}).get(name)
    return value if value is not None else "–"
