"""Calls and transcripts in admin: read-only, a conversation on the call page.

Extension apps add their columns, filters, sections and inlines through mixins named in
`settings.CALL_ADMIN_EXTENSIONS` (assistants.admin_helpers); each overrides the `get_*` methods below and
adds to what `super()` returns.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from assistants.admin_helpers import ReadOnlyMixin, extended_admin

from .models import Call, CallStatus, ServerProcess, TranscriptEntry


class TranscriptInline(ReadOnlyMixin, admin.TabularInline):
    model = TranscriptEntry
    template = "admin/calls/transcript_inline.html"
    fields = ("position", "role", "text", "interrupted", "offset_ms")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "Conversation"


class CallAdminBase(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("started_at", "from_number", "to_number", "assistant", "status", "duration_col", "end_reason")
    list_filter = ("status", "assistant", "direction", "is_test", ("started_at", admin.DateFieldListFilter))
    search_fields = ("call_id", "from_number", "to_number")
    date_hierarchy = "started_at"
    list_select_related = ("assistant",)
    inlines = [TranscriptInline]
    fieldsets = (
        (None, {"fields": ("started_at", "from_number", "to_number", "assistant", "status", "duration_col")}),
        ("How it ended", {"fields": ("end_reason", "end_detail", "map_number", "ended_at")}),
        ("Assistant settings used", {"fields": ("revision_link",)}),
        ("Details", {"classes": ("collapse",), "fields": ("call_id", "direction", "is_test", "worker", "server")}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Call._meta.fields] + ["duration_col", "map_number", "revision_link"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    @admin.display(description="duration", ordering="duration")
    def duration_col(self, obj: Call) -> str:
        return obj.duration_display

    @admin.display(description="map the number")
    def map_number(self, obj: Call) -> str:
        if obj.status != CallStatus.REJECTED or not obj.to_number:
            return "–"
        url = reverse("admin:assistants_phonenumber_add") + "?" + urlencode({"number": obj.to_number})
        return format_html('<a href="{}">Send calls to {} to an assistant…</a>', url, obj.to_number)

    @admin.display(description="assistant settings used")
    def revision_link(self, obj: Call) -> str:
        revision = obj.revision
        if revision is None:
            return "Unknown (the call started before prompt history was kept)."
        url = reverse("admin:assistants_assistantrevision_change", args=[revision.pk])
        return format_html(
            '<a href="{}">{} — version {}</a> (the exact instructions, voice and settings of this call)',
            url,
            revision.assistant,
            revision.number,
        )


CallAdmin = extended_admin(CallAdminBase, "CALL_ADMIN_EXTENSIONS")
admin.site.register(Call, CallAdmin)


@admin.register(ServerProcess)
class ServerProcessAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Which server processes ran, and whether each still beats: read-only, for operations."""

    list_display = ("slot", "pid", "started_at", "last_seen_at", "state", "active_calls")
    list_filter = (("stopped_at", admin.EmptyFieldListFilter),)
    search_fields = ("slot", "host", "boot_id")
    readonly_fields = ("slot", "host", "pid", "boot_id", "started_at", "last_seen_at", "stopped_at", "state")

    @admin.display(description="state")
    def state(self, obj: ServerProcess) -> str:
        if obj.stopped_at is not None:
            return "Stopped"
        silent = (timezone.now() - obj.last_seen_at).total_seconds()
        if silent > settings.SERVER_DEAD_AFTER_SECONDS:
            return f"Silent for {silent:.0f} s: dead; its calls are being closed"
        return "Running"

    @admin.display(description="active calls")
    def active_calls(self, obj: ServerProcess) -> int:
        return obj.calls.filter(status=CallStatus.ACTIVE).count()
