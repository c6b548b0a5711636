"""Admin: model prices, prompt history (compare, restore), and cost totals per day and assistant."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Avg, Count, Sum
from django.db.models.functions import TruncDate
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from assistants.models import AssistantRevision

from . import revisions
from .admin_mixins import CallInsightsAdminMixin, SlowCallFilter, money
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


def _can_view_assistants(request) -> bool:
    user = request.user
    return (
        user.is_active
        and user.is_staff
        and (user.has_perm("assistants.view_assistant") or user.has_perm("assistants.change_assistant"))
    )


@admin.register(AssistantRevision)
class AssistantRevisionAdmin(admin.ModelAdmin):
    """Read-only history; a version's page compares it and can restore it."""

    list_display = ("assistant", "number", "created_at", "created_by", "what_changed")
    list_filter = ("assistant",)
    list_select_related = ("assistant", "created_by")
    search_fields = ("assistant__name",)
    date_hierarchy = "created_at"

    def has_module_permission(self, request) -> bool:
        return _can_view_assistants(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return _can_view_assistants(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    @admin.display(description="what changed")
    def what_changed(self, obj: AssistantRevision) -> str:
        return ", ".join(revisions.field_label(n) for n in obj.changed_fields) or "first version"

    def get_urls(self):
        restore = path(
            "<int:object_id>/restore/",
            self.admin_site.admin_view(self.restore_view),
            name="assistants_assistantrevision_restore",
        )
        return [restore, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """A version's page: its settings next to the previous version's (or the current ones)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        revision = get_object_or_404(AssistantRevision.objects.select_related("assistant", "created_by"), pk=object_id)
        assistant = revision.assistant
        current = revisions.snapshot(assistant)
        against = request.GET.get("compare", "previous")
        if against == "current":
            other, other_label = current, "now"
        else:
            against = "previous"
            previous = (
                AssistantRevision.objects.filter(assistant=assistant, number__lt=revision.number)
                .order_by("-number")
                .first()
            )
            other = previous.settings if previous else {}
            other_label = f"version {previous.number}" if previous else "(no earlier version)"
        this_label = f"version {revision.number}"
        old, new = (revision.settings, other) if against == "current" else (other, revision.settings)
        old_label, new_label = (this_label, other_label) if against == "current" else (other_label, this_label)
        names = list(revision.settings) + [n for n in other if n not in revision.settings]
        rows = [
            {
                "label": revisions.field_label(name),
                "this": revisions.display_value(name, revision.settings.get(name)),
                "other": revisions.display_value(name, other.get(name)),
                "changed": revision.settings.get(name) != other.get(name),
            }
            for name in names
            if name not in ("instructions", "welcome_message")
        ]
        calls = revision.calls.count()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{assistant} — version {revision.number}",
            "revision": revision,
            "assistant": assistant,
            "against": against,
            "this_label": this_label,
            "other_label": other_label,
            "changed": [revisions.field_label(n) for n in revision.changed_fields],
            "instructions_diff": revisions.text_diff_html(
                str(old.get("instructions") or ""),
                str(new.get("instructions") or ""),
                old_label=old_label,
                new_label=new_label,
            ),
            "welcome_diff": revisions.text_diff_html(
                str(old.get("welcome_message") or ""),
                str(new.get("welcome_message") or ""),
                old_label=old_label,
                new_label=new_label,
            ),
            "rows": rows,
            "is_current": revision.settings == current,
            "can_restore": request.user.has_perm("assistants.change_assistant"),
            "calls": calls,
            "calls_url": reverse("admin:calls_call_changelist") + f"?revision={revision.pk}",
            "assistant_url": reverse("admin:assistants_assistant_change", args=[assistant.pk]),
            "restore_url": reverse("admin:assistants_assistantrevision_restore", args=[revision.pk]),
        }
        return TemplateResponse(request, "admin/insights/revision_detail.html", context)

    def restore_view(self, request, object_id):
        """Called by the restore button (POST): the assistant takes this version's settings again."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("assistants.change_assistant"):
            raise PermissionDenied
        revision = get_object_or_404(AssistantRevision.objects.select_related("assistant"), pk=object_id)
        try:
            new = revisions.revision_restore(revision=revision, user=request.user)
        except revisions.RestoreError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:assistants_assistantrevision_change", args=[revision.pk]))
        if new.number == revision.number:
            text = f"{revision.assistant} already has the settings of version {revision.number}; nothing changed."
        else:
            text = (
                f"Restored version {revision.number} of {revision.assistant}; saved as version {new.number}. "
                "Calls that start from now on use it."
            )
        self.message_user(request, text, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:assistants_assistant_change", args=[revision.assistant_id]))


@admin.register(CallCostSummary)
class CallCostSummaryAdmin(CallInsightsAdminMixin, admin.ModelAdmin):
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
