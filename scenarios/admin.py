"""Scenarios in admin: write them (or import YAML), run them, watch the progress, read the results."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from assistants.admin_helpers import ReadOnlyMixin
from assistants.models import Assistant
from scenarios.models import Scenario, ScenarioAttempt, ScenarioRun, ScenarioSettings
from scenarios.selectors import revision_matrix, run_summary
from scenarios.services import run_create, run_start
from scenarios.yaml_io import ScenarioFileError, export_yaml, scenarios_import


class ImportForm(forms.Form):
    assistant = forms.ModelChoiceField(Assistant.objects.all())
    file = forms.FileField(help_text="A YAML file of scenarios (see docs/scenarios.md). Same ids are updated.")


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = ("slug", "assistant", "mode", "repeat", "ends_with", "max_turns")
    list_filter = ("assistant", "mode")
    search_fields = ("slug", "caller_instructions")
    actions = ["run_selected"]
    change_list_template = "admin/scenarios/scenario/change_list.html"
    fieldsets = (
        (None, {"fields": ("assistant", "slug", "mode", "repeat", "turn_limit")}),
        ("The caller", {"fields": ("caller_instructions", "caller_language", "facts")}),
        (
            "Checks (must all hold)",
            {"fields": ("tools_called", "ends_with", "max_turns", "max_first_audio_ms", "forbidden_phrases")},
        ),
        ("Judge", {"fields": ("judge",)}),
        ("Tools in tests", {"fields": ("tool_mocks",)}),
    )

    @admin.action(description="Run scenarios (the selected ones)")
    def run_selected(self, request, queryset):
        by_assistant: dict[int, list[Scenario]] = {}
        for scenario in queryset.select_related("assistant"):
            by_assistant.setdefault(scenario.assistant_id, []).append(scenario)
        last = None
        for chosen in by_assistant.values():
            last = run_create(assistant=chosen[0].assistant, scenarios=chosen)
            messages.info(request, f"{last} queued: {run_start(run=last)}")
        if last is not None:
            return redirect(reverse("admin:scenarios_scenariorun_change", args=[last.pk]))
        return None

    def get_urls(self):
        extra = [
            path("import/", self.admin_site.admin_view(self.import_view), name="scenarios_scenario_import"),
            path(
                "export/<int:assistant_id>/",
                self.admin_site.admin_view(self.export_view),
                name="scenarios_scenario_export",
            ),
            path("run/<int:assistant_id>/", self.admin_site.admin_view(self.run_all_view), name="scenarios_run_all"),
            path("matrix/<int:assistant_id>/", self.admin_site.admin_view(self.matrix_view), name="scenarios_matrix"),
        ]
        return extra + super().get_urls()

    def import_view(self, request):
        if not self.has_add_permission(request):
            return redirect("admin:index")
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                text = form.cleaned_data["file"].read().decode("utf-8")
                created, updated = scenarios_import(assistant=form.cleaned_data["assistant"], text=text)
            except (ScenarioFileError, UnicodeDecodeError) as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, f"Imported: {created} new, {updated} updated.")
                return redirect("admin:scenarios_scenario_changelist")
        context = {**self.admin_site.each_context(request), "form": form, "title": "Import scenarios from YAML"}
        return TemplateResponse(request, "admin/scenarios/import.html", context)

    def export_view(self, request, assistant_id: int):
        assistant = get_object_or_404(Assistant, pk=assistant_id)
        response = HttpResponse(export_yaml(assistant), content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="scenarios-{assistant.pk}.yaml"'
        return response

    def run_all_view(self, request, assistant_id: int):
        assistant = get_object_or_404(Assistant, pk=assistant_id)
        if request.method != "POST":
            return redirect("admin:scenarios_matrix", assistant_id)
        if not assistant.scenarios.exists():
            messages.error(request, f"{assistant.name} has no scenarios yet: add one first.")
            return redirect("admin:scenarios_matrix", assistant_id)
        run = run_create(assistant=assistant)
        messages.info(request, f"{run} queued: {run_start(run=run)}")
        return redirect(reverse("admin:scenarios_scenariorun_change", args=[run.pk]))

    def matrix_view(self, request, assistant_id: int):
        assistant = get_object_or_404(Assistant, pk=assistant_id)
        slugs, rows = revision_matrix(assistant.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Scenario results of {assistant.name} per version",
            "assistant": assistant,
            "slugs": slugs,
            "rows": rows,
        }
        return TemplateResponse(request, "admin/scenarios/matrix.html", context)


class AttemptInline(admin.TabularInline):
    model = ScenarioAttempt
    fields = ("scenario", "index", "passed", "ended_with", "cost_usd")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ScenarioRun)
class ScenarioRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("__str__", "status", "progress", "pass_rate", "cost_usd", "created_at")
    list_filter = ("assistant", "status")
    change_form_template = "admin/scenarios/scenariorun/change_form.html"
    readonly_fields = ("assistant", "revision_link", "mode", "status", "progress", "cost_usd", "error")
    fields = readonly_fields

    @admin.display(description="progress")
    def progress(self, obj: ScenarioRun) -> str:
        return f"{obj.done} of {obj.total}"

    @admin.display(description="passed")
    def pass_rate(self, obj: ScenarioRun) -> str:
        return f"{obj.passed}/{obj.done}" if obj.done else "–"

    @admin.display(description="version tested")
    def revision_link(self, obj: ScenarioRun) -> str:
        if not obj.revision_id:
            return "–"
        url = reverse("admin:assistants_assistantrevision_change", args=[obj.revision_id])
        return format_html('<a href="{}">version {}</a>', url, obj.revision.number)

    def get_urls(self):
        extra = [
            path(
                "<int:run_id>/progress.json",
                self.admin_site.admin_view(self.progress_view),
                name="scenarios_scenariorun_progress",
            )
        ]
        return extra + super().get_urls()

    def progress_view(self, request, run_id: int):
        run = get_object_or_404(ScenarioRun, pk=run_id)
        return JsonResponse(
            {"status": run.status, "done": run.done, "total": run.total, "passed": run.passed, "error": run.error}
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = get_object_or_404(ScenarioRun, pk=object_id)
        extra_context = {**(extra_context or {}), "summary": run_summary(run), "run": run}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(ScenarioAttempt)
class ScenarioAttemptAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("__str__", "run", "passed", "ended_with", "cost_usd")
    list_filter = ("passed", "run__assistant")
    readonly_fields = (
        "run",
        "scenario",
        "index",
        "mode",
        "passed",
        "ended_with",
        "error",
        "transcript",
        "tool_calls",
        "check_results",
        "judge_results",
        "cost_usd",
        "call",
    )
    fields = readonly_fields


@admin.action(description="Run scenarios (all of each selected assistant's)")
def run_assistant_scenarios(modeladmin, request, queryset):
    for assistant in queryset:
        if not assistant.scenarios.exists():
            messages.warning(request, f"{assistant.name} has no scenarios yet.")
            continue
        run = run_create(assistant=assistant)
        messages.info(request, f"{run} queued: {run_start(run=run)}")


class ScenarioSettingsInline(admin.StackedInline):
    model = ScenarioSettings
    can_delete = False
    verbose_name_plural = "scenario tests"
    extra = 1
    max_num = 1


class AssistantScenariosAdminMixin:
    """For AssistantAdmin (settings.ASSISTANT_ADMIN_EXTENSIONS): the versions × scenarios matrix, "Run scenarios",
    and whether the scenarios run after each prompt change."""

    def get_inlines(self, request, obj):
        return [*super().get_inlines(request, obj), ScenarioSettingsInline]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions["run_assistant_scenarios"] = (
            run_assistant_scenarios,
            "run_assistant_scenarios",
            run_assistant_scenarios.short_description,
        )
        return actions

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "scenario_results")

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return (*fieldsets, ("Scenario tests", {"fields": ("scenario_results",)}))

    @admin.display(description="results per version")
    def scenario_results(self, obj) -> SafeString:
        slugs, rows = revision_matrix(obj.pk)
        context = {"assistant": obj, "slugs": slugs, "rows": rows[:8], "count": obj.scenarios.count()}
        return render_to_string("admin/scenarios/assistant_matrix.html", context)
