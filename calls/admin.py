"""Calls and transcripts in admin: read-only, a conversation on the call page."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from insights.admin_mixins import CallInsightsAdminMixin, SlowCallFilter
from tools.admin import ToolCallInline

from .models import Call, CallStatus, TranscriptEntry


class TranscriptInline(admin.TabularInline):
    model = TranscriptEntry
    template = "admin/calls/transcript_inline.html"
    fields = ("position", "role", "text", "interrupted", "offset_ms")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "Conversation"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Call)
class CallAdmin(CallInsightsAdminMixin, admin.ModelAdmin):
    list_display = ("started_at", "from_number", "to_number", "assistant", "status", "duration_col", "end_reason")
    list_display += ("cost_col", "reply_time_col")
    list_filter = ("status", "assistant", "direction", "is_test", ("started_at", admin.DateFieldListFilter))
    list_filter += (SlowCallFilter,)
    search_fields = ("call_id", "from_number", "to_number")
    date_hierarchy = "started_at"
    list_select_related = ("assistant",)
    inlines = [TranscriptInline, ToolCallInline]
    fieldsets = (
        (None, {"fields": ("started_at", "from_number", "to_number", "assistant", "status", "duration_col")}),
        ("How it ended", {"fields": ("end_reason", "end_detail", "map_number", "ended_at")}),
        ("Cost and reply time", {"fields": ("cost_col", "cost_detail", "reply_times")}),
        ("Recording", {"fields": ("recording_player",)}),
        ("Assistant settings used", {"fields": ("revision_link",)}),
        ("Details", {"classes": ("collapse",), "fields": ("call_id", "direction", "is_test", "worker")}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Call._meta.fields] + ["duration_col", "map_number", *self.insights_readonly_fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

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
