"""After-call analysis in admin: the assistant's "After the call" section (with the fields table), and
the analysis on the call pages (column, filter, search, the report, "Analyse again", export)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from assistants.admin_helpers import insert_fieldsets
from assistants.analysis_schema import FIELD_TYPES, SchemaProblem, fields_to_schema, schema_to_fields, strict_problems
from calls.models import Call

from . import analysis, analysis_services, export
from .models import AnalysisOutcome, AnalysisStatus, CallAnalysis

BLANK_ROWS = 3
ANALYSIS_FIELDS = (
    "analysis_summary_enabled",
    "analysis_summary_instructions",
    "analysis_success_goal",
    "analysis_schema",
)


class FieldsTableWidget(forms.Widget):
    """A table of fields (name, type, choices, description, required) plus the JSON Schema for developers.

    Plain form inputs, so it works without JavaScript: three empty rows to add fields (save for more);
    clear a row's name to remove it. Changing the JSON text wins over the table.
    """

    def format_value(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value or "{}")
            except ValueError:
                return value
        return value or {}

    def render(self, name, value, attrs=None, renderer=None):
        schema = self.format_value(value)
        text = schema if isinstance(schema, str) else json.dumps(schema, indent=2, ensure_ascii=False)
        rows = schema_to_fields(schema) if isinstance(schema, dict) else None
        if rows is None:
            table = format_html(
                "<p>These fields were written as JSON Schema by hand: edit them under “Advanced” below.</p>"
                '<input type="hidden" name="{}-table" value="off">',
                name,
            )
        else:
            rows = [*rows, *({} for _ in range(BLANK_ROWS))]
            body = format_html_join("", "{}", ((self._row(name, i, row),) for i, row in enumerate(rows)))
            table = format_html(
                '<table class="analysis-fields"><thead><tr><th>name</th><th>type</th>'
                "<th>choices (for “one of a list”, comma separated)</th><th>description for the model</th>"
                "<th>required</th></tr></thead><tbody>{}</tbody></table>"
                '<p class="help">Names: letters, digits and _ (e.g. booking_date). A field that is not '
                "required is left empty when the caller did not say it. Clear a name to remove its field.</p>",
                body,
            )
        return format_html(
            '{}<details style="margin-top:.5em"><summary>Advanced: edit JSON Schema</summary>'
            '<textarea name="{}-json" rows="12" cols="90" style="font-family:monospace">{}</textarea>'
            '<input type="hidden" name="{}-json-initial" value="{}">'
            '<p class="help">Strict structured-output rules: “additionalProperties”: false and every '
            'property in “required” (optional ones nullable, e.g. "type": ["string", "null"]).</p></details>',
            table,
            name,
            text,
            name,
            text,
        )

    def _row(self, name: str, i: int, row: dict[str, Any]):
        prefix = f"{name}-{i}"
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            ((k, mark_safe(" selected") if row.get("type") == k else "", label) for k, label in FIELD_TYPES.items()),
        )
        return format_html(
            '<tr><td><input name="{}-name" value="{}" size="18"></td>'
            '<td><select name="{}-type">{}</select></td>'
            '<td><input name="{}-choices" value="{}" size="22"></td>'
            '<td><input name="{}-description" value="{}" size="40"></td>'
            '<td><input type="checkbox" name="{}-required"{}></td></tr>',
            prefix,
            row.get("name", ""),
            prefix,
            options,
            prefix,
            row.get("choices", ""),
            prefix,
            row.get("description", ""),
            prefix,
            mark_safe(" checked") if row.get("required") else "",
        )

    def value_from_datadict(self, data, files, name):
        text, initial = data.get(f"{name}-json"), data.get(f"{name}-json-initial")
        if text is not None and text.strip() != (initial or "").strip():
            return ("json", text)
        if data.get(f"{name}-table") == "off":
            return ("json", text or "{}")
        rows, i = [], 0
        while f"{name}-{i}-name" in data:
            prefix = f"{name}-{i}"
            if data.get(f"{prefix}-name", "").strip():
                rows.append(
                    {
                        "name": data.get(f"{prefix}-name", ""),
                        "type": data.get(f"{prefix}-type", "text"),
                        "choices": data.get(f"{prefix}-choices", ""),
                        "description": data.get(f"{prefix}-description", ""),
                        "required": data.get(f"{prefix}-required") in ("on", "true", "1"),
                    }
                )
            i += 1
        if i == 0 and text is None:
            return None  # the section was not on the page
        return ("rows", rows)


class AnalysisSchemaField(forms.Field):
    widget = FieldsTableWidget

    def to_python(self, value):
        if value is None or value in ({}, ""):
            return {}
        if isinstance(value, dict):
            return value
        kind, payload = value
        if kind == "json":
            try:
                schema = json.loads(payload or "{}")
            except ValueError as exc:
                raise ValidationError(f"The JSON Schema is not valid JSON: {exc}.") from None
        else:
            try:
                schema = fields_to_schema(payload)
            except SchemaProblem as exc:
                raise ValidationError(exc.problems) from None
        problems = strict_problems(schema)
        if problems:
            raise ValidationError([p[0].upper() + p[1:] for p in problems])
        return schema

    def has_changed(self, initial, data):
        try:
            return self.to_python(data) != (initial or {})
        except ValidationError:
            return True


class AssistantAnalysisAdminMixin:
    """For AssistantAdmin (settings.ASSISTANT_ADMIN_EXTENSIONS): the "After the call" section."""

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (title, {**opts, "fields": tuple(f for f in opts["fields"] if f not in ANALYSIS_FIELDS)})
            for title, opts in super().get_fieldsets(request, obj)
        ]
        section = (
            "After the call: summary, success and fields",
            {
                "description": "A text model reads each finished call and writes what you ask for here. It "
                "shows on the call's page, in the API, in the after-call webhook and in exports. It is billed "
                "by OpenAI (a small share of the call's cost).",
                "fields": ANALYSIS_FIELDS,
            },
        )
        return insert_fieldsets(fieldsets, [section], before="Recordings")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "analysis_schema":
            return AnalysisSchemaField(
                required=False, label=db_field.verbose_name.capitalize(), help_text=db_field.help_text
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class OutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return (*AnalysisOutcome.choices, ("failed", "Analysis failed"), ("none", "Not analysed"))

    def queryset(self, request, queryset):
        value = self.value()
        if value in AnalysisOutcome.values:
            return queryset.filter(analysis__outcome=value)
        if value == "failed":
            return queryset.filter(analysis__status=AnalysisStatus.FAILED)
        if value == "none":
            return queryset.filter(analysis__isnull=True)
        return queryset


OUTCOME_COLOURS = {"success": "#2e7d32", "failure": "#ba2121", "unclear": "#8a6d3b"}


def analysis_report(analysis: CallAnalysis | None) -> str:
    """The analysis as people read it (admin and dashboard): summary, outcome and reason, fields."""
    if analysis is None:
        return "Not analysed (switch it on in the assistant's “After the call” section)."
    if analysis.status in (AnalysisStatus.PENDING, AnalysisStatus.RUNNING):
        return f"{analysis.get_status_display()}…"
    if analysis.status == AnalysisStatus.FAILED:
        return format_html(
            '<p style="color:#ba2121">The analysis failed: {}</p><p>Use “Analyse again” in the call list.</p>',
            analysis.error,
        )
    parts = []
    if analysis.summary:
        parts.append(format_html("<p>{}</p>", analysis.summary))
    if analysis.outcome:
        parts.append(
            format_html(
                '<p><strong style="color:{}">{}</strong> — {}</p>',
                OUTCOME_COLOURS.get(analysis.outcome, "inherit"),
                analysis.get_outcome_display(),
                analysis.reason,
            )
        )
    if analysis.data:
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td></tr>",
            ((k, export.cell(v) or "–") for k, v in analysis.as_json()["data"].items()),
        )
        parts.append(format_html("<table>{}</table>", rows))
    parts.append(format_html('<p class="help">By {}.</p>', analysis.model))
    return format_html_join("", "{}", ((p,) for p in parts))


class CallAnalysisAdminMixin:
    """For CallAdmin (settings.CALL_ADMIN_EXTENSIONS)."""

    def get_list_display(self, request):
        return (*super().get_list_display(request), "outcome_col")

    def get_list_filter(self, request):
        return (*super().get_list_filter(request), OutcomeFilter)

    def get_search_fields(self, request):
        return (*super().get_search_fields(request), "analysis__summary")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("analysis")

    def get_fieldsets(self, request, obj=None):
        section = (("After the call", {"fields": ("analysis_col",)}),)
        return insert_fieldsets(super().get_fieldsets(request, obj), section, before="How it ended")

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "analysis_col", "outcome_col")

    def get_actions(self, request):
        actions = super().get_actions(request)
        allowed = [export_csv]
        if request.user.has_perm("insights.change_callanalysis"):  # it is billed: not for every viewer
            allowed.append(analyse_again)
        for func in allowed:
            actions[func.__name__] = (func, func.__name__, func.short_description)
        return actions

    @admin.display(description="outcome", ordering="analysis__outcome")
    def outcome_col(self, obj: Call) -> str:
        a = getattr(obj, "analysis", None)
        if a is None:
            return "–"
        if a.status != AnalysisStatus.DONE:
            return a.get_status_display()
        if not a.outcome:
            return "done"
        return format_html(
            '<span style="color:{}" title="{}">{}</span>',
            OUTCOME_COLOURS.get(a.outcome, "inherit"),
            a.reason,
            a.get_outcome_display(),
        )

    @admin.display(description="analysis")
    def analysis_col(self, obj: Call) -> str:
        return analysis_report(CallAnalysis.objects.filter(call=obj).first())


def analyse_again(modeladmin, request, queryset):
    pks = [
        analysis_services.call_analysis_queue(call_pk=pk, force=True) for pk in queryset.values_list("pk", flat=True)
    ]
    pks = [pk for pk in pks if pk is not None]
    if settings.ANALYSIS_IN_WEB:
        for pk in pks:
            analysis.schedule(pk)
    modeladmin.message_user(
        request, f"{len(pks)} call(s) are being analysed again; reload the page in a moment.", messages.SUCCESS
    )


analyse_again.short_description = "Analyse again"


def export_csv(modeladmin, request, queryset):
    return export.streaming_response(queryset, "csv")


export_csv.short_description = "Export with analysis (CSV)"


@admin.register(CallAnalysis)
class CallAnalysisAdmin(admin.ModelAdmin):
    list_display = ("call", "status", "outcome", "model", "attempts", "cost", "finished_at")
    list_filter = ("status", "outcome", "model")
    search_fields = ("summary", "call__call_id")
    list_select_related = ("call",)
    readonly_fields = [f.name for f in CallAnalysis._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
