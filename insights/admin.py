"""Admin: model prices, and cost totals per day and assistant."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Avg, Count, Sum
from django.db.models.functions import TruncDate

from .admin_mixins import CallInsightsColumns, SlowCallFilter, money
from .models import CallCostSummary, ModelPrice

SUMMARY_DAYS = 90


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = (
        "model",
        "kind",
        "currency",
        "text_input",
        "cached_text_input",
        "text_output",
        "audio_input",
        "cached_audio_input",
        "audio_output",
        "per_minute",
        "checked",
        "updated_at",
    )
    list_filter = ("kind", "checked")
    search_fields = ("model",)
    readonly_fields = ("updated_at",)
    fieldsets = (
        (None, {"fields": ("model", "kind", "currency", "checked", "source", "updated_at")}),
        (
            "Prices per 1 million tokens",
            {
                "description": "OpenAI's list prices. A call's cost is worked out with the prices in force when it "
                "ends; run <code>manage.py recompute_call_costs</code> to price earlier calls again.",
                "fields": (
                    ("text_input", "cached_text_input", "text_output"),
                    ("audio_input", "cached_audio_input", "audio_output"),
                ),
            },
        ),
        ("Billed by time", {"fields": ("per_minute",)}),
    )


@admin.register(CallCostSummary)
class CallCostSummaryAdmin(CallInsightsColumns, admin.ModelAdmin):
    """Totals of the calls the filters select: per day and per assistant, with the calls listed below."""

    change_list_template = "admin/insights/cost_summary.html"
    list_display = ("started_at", "assistant", "status", "duration", "cost_col", "reply_time_col")
    list_filter = ("assistant", "status", "is_test", SlowCallFilter, ("started_at", admin.DateFieldListFilter))
    date_hierarchy = "started_at"
    list_select_related = ("assistant",)
    list_display_links = None

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff and request.user.has_perm("calls.view_call")

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        try:
            qs = response.context_data["cl"].queryset
        except (AttributeError, KeyError):
            return response  # a redirect or an error page
        qs = qs.order_by()
        sums = dict(calls=Count("id"), cost=Sum("cost"), minutes=Sum("duration"), p95=Avg("latency_p95_ms"))
        per_day = list(
            qs.annotate(day=TruncDate("started_at"))
            .values("day", "cost_currency")
            .annotate(**sums)
            .order_by("-day", "cost_currency")[:SUMMARY_DAYS]
        )
        per_assistant = list(
            qs.values("assistant__name", "cost_currency").annotate(**sums).order_by("-cost", "assistant__name")
        )
        totals = list(qs.values("cost_currency").annotate(**sums).order_by("cost_currency"))
        for row in (*per_day, *per_assistant, *totals):
            row["cost_display"] = money(row["cost"], row["cost_currency"])
            row["minutes_display"] = f"{row['minutes'].total_seconds() / 60:.1f}" if row["minutes"] else "0.0"
            row["p95_display"] = f"{row['p95']:.0f} ms" if row["p95"] is not None else "–"
        response.context_data.update(
            per_day=per_day, per_assistant=per_assistant, totals=totals, summary_days=SUMMARY_DAYS
        )
        return response
