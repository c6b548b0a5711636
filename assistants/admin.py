"""Admin for the people who run the assistants: plain-language sections, numbers inline.

Extension apps add their inlines, sections and actions through mixins named in
`settings.ASSISTANT_ADMIN_EXTENSIONS`.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.db.models import Count
from django.utils.html import format_html_join

from .admin_helpers import extended_admin, https_formfield
from .models import Assistant, PhoneNumber
from .revision_admin import RevisionHistoryMixin


class PhoneNumberInline(admin.TabularInline):
    model = PhoneNumber
    extra = 0
    fields = ("number", "label", "is_active")
    verbose_name_plural = "Phone numbers that reach this assistant"


class AssistantForm(forms.ModelForm):
    class Meta:
        model = Assistant
        fields = "__all__"
        formfield_callback = https_formfield
        widgets = {
            "instructions": forms.Textarea(attrs={"rows": 24, "cols": 100, "class": "prompt-editor"}),
            "welcome_message": forms.Textarea(attrs={"rows": 3, "cols": 100}),
        }


class AssistantAdminBase(RevisionHistoryMixin, admin.ModelAdmin):
    form = AssistantForm
    inlines = [PhoneNumberInline]
    list_display = ("name", "model", "voice", "number_list", "is_active", "updated_at")
    list_filter = ("is_active", "model", "voice", "audio_format")
    search_fields = ("name", "instructions", "welcome_message", "numbers__number")
    readonly_fields = ("created_at", "updated_at", "revision_history")
    actions = ["duplicate"]
    save_on_top = True
    # Adds "Talk to this assistant" (a browser test call, dashboard app) to the object tools.
    change_form_template = "admin/assistants/assistant/talk_change_form.html"
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # as the form's own fields (above)
    fieldsets = (
        ("Persona", {"fields": ("name", "is_active", "welcome_message", "instructions")}),
        ("Voice", {"fields": ("voice", "speed", "language")}),
        (
            "Listening and turn-taking",
            {
                "description": "How the assistant knows the caller has finished, and whether callers can interrupt it.",
                "fields": (
                    "turn_detection",
                    "silence_duration_ms",
                    "vad_threshold",
                    "prefix_padding_ms",
                    "eagerness",
                    "allow_interruptions",
                    "noise_reduction",
                ),
            },
        ),
        (
            "Limits",
            {"fields": ("max_call_minutes", "silence_timeout_seconds")},
        ),
        (
            "Actions during and after the call",
            {
                "fields": (
                    "end_call_enabled",
                    "transfer_number",
                    "datetime_tool_enabled",
                    "time_zone",
                    "post_call_webhook_url",
                    "post_call_webhook_secret",
                )
            },
        ),
        ("Recordings", {"fields": ("record_calls", "recording_retention_days")}),
        ("Prompt history", {"fields": ("revision_history",)}),
        (
            "Advanced",
            {
                "classes": ("collapse",),
                "fields": ("model", "audio_format", "transcription_model", "created_at", "updated_at"),
            },
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("numbers").annotate(_numbers=Count("numbers"))

    def get_inline_instances(self, request, obj=None):
        # Prompt editors see the numbers but may not change them.
        return [
            inline
            for inline in super().get_inline_instances(request, obj)
            if request.user.has_perm("assistants.view_phonenumber")
            or request.user.has_perm("assistants.change_phonenumber")
        ]

    @admin.display(description="numbers")
    def number_list(self, obj: Assistant) -> str:
        numbers = list(obj.numbers.all())
        if not numbers:
            return "–"
        return format_html_join(", ", "{}", ((n.number,) for n in numbers))

    @admin.action(description="Duplicate the selected assistants (without their numbers)")
    def duplicate(self, request, queryset):
        created = []
        with transaction.atomic():
            for assistant in queryset:
                copy = Assistant.objects.get(pk=assistant.pk)
                copy.pk = None
                copy.name = _free_copy_name(assistant.name)
                copy.is_active = False
                copy.save()
                created.append(copy.name)
        self.message_user(
            request,
            f"Created {', '.join(created)} (inactive, no numbers): edit and activate when ready.",
            messages.SUCCESS,
        )


def _free_copy_name(name: str) -> str:
    base = f"{name} (copy)"
    candidate, n = base, 2
    while Assistant.objects.filter(name=candidate).exists():
        candidate = f"{name} (copy {n})"
        n += 1
    return candidate[:100]


AssistantAdmin = extended_admin(AssistantAdminBase, "ASSISTANT_ADMIN_EXTENSIONS")
admin.site.register(Assistant, AssistantAdmin)


@admin.register(PhoneNumber)
class PhoneNumberAdmin(admin.ModelAdmin):
    list_display = ("number", "label", "assistant", "is_active", "created_at")
    list_filter = ("is_active", "assistant")
    search_fields = ("number", "label", "assistant__name")
    autocomplete_fields = ("assistant",)
