"""Prompt history in admin: every saved version of an assistant, compared with another and restorable."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from . import revisions
from .models import AssistantRevision

HISTORY_ROWS = 10


class RevisionHistoryMixin:
    """For AssistantAdmin: saves from admin make one revision each, with the editor's name."""

    def save_model(self, request, obj, form, change):
        with revisions.recorded_by_caller():
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        revisions.revision_record(assistant=form.instance, user=request.user)

    @admin.display(description="versions")
    def revision_history(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "The first version is kept when you save."
        latest = list(
            AssistantRevision.objects.filter(assistant=obj)
            .select_related("created_by")
            .order_by("-number")[:HISTORY_ROWS]
        )
        if not latest:
            return "No versions kept yet: the next save keeps one."
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">version {}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:assistants_assistantrevision_change", args=[r.pk]),
                    r.number,
                    timezone.localtime(r.created_at).strftime("%Y-%m-%d %H:%M"),
                    r.created_by or "(not in admin)",
                    ", ".join(revisions.field_label(n) for n in r.changed_fields) or "first version",
                )
                for r in latest
            ),
        )
        all_url = reverse("admin:assistants_assistantrevision_changelist") + f"?assistant__id__exact={obj.pk}"
        return format_html(
            "<table><tr><th>version</th><th>saved</th><th>by</th><th>what changed</th></tr>{}</table>"
            '<p><a href="{}">All versions</a> · open a version to compare it or restore it.</p>',
            rows,
            all_url,
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
        return TemplateResponse(request, "admin/assistants/revision_detail.html", context)

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
