"""Campaigns in admin: the campaign with its progress and buttons, the CSV upload with a preview,
the rendered prompt for one contact, the export, and the do-not-call list."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html

from assistants.phone import normalize_e164

from . import services
from .csv_import import needed_variables, parse_contacts
from .models import Campaign, Contact, ContactAttempt, DoNotCall
from .rendering import MissingVariable, render_prompt
from .rendering import render as render_text
from .selectors import campaign_export_csv, campaign_progress

MAX_UPLOAD_BYTES = 10 * 1024 * 1024


class UploadForm(forms.Form):
    file = forms.FileField(required=False, help_text="A CSV file: one column “number”, one per {{variable}}.")
    data = forms.CharField(required=False, widget=forms.HiddenInput)  # the checked file, carried to the confirm step


def _progress_bar(progress) -> str:
    return format_html(
        '<div style="width:160px;background:#eee;border-radius:3px" title="{} of {} finished">'
        '<div style="width:{}%;background:#417690;color:#fff;font-size:11px;padding:1px 4px;'
        'white-space:nowrap">{}%</div>'
        "</div>",
        progress.finished,
        progress.total,
        progress.percent,
        progress.percent,
    )


class ContactAttemptInline(admin.TabularInline):
    model = ContactAttempt
    extra = 0
    can_delete = False
    fields = ("created_at", "outbound", "outcome", "error", "ended_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "assistant", "status", "progress", "in_progress", "created_at")
    list_filter = ("status",)
    readonly_fields = ("status", "last_error", "progress_detail", "tools")
    actions = ["start", "pause", "resume", "cancel"]
    fieldsets = (
        (None, {"fields": ("name", "assistant", "status", "last_error", "progress_detail", "tools")}),
        ("Pacing", {"fields": ("max_concurrent", "calls_per_minute")}),
        (
            "Calling hours",
            {"fields": ("calling_hours_start", "calling_hours_end", "calling_days", "time_zone")},
        ),
        (
            "Retries",
            {
                "fields": (
                    "retry_on_no_answer",
                    "retry_on_busy",
                    "retry_on_failed",
                    "retry_on_voicemail",
                    "retry_delay_minutes",
                    "max_attempts",
                )
            },
        ),
        ("Answering machines", {"fields": ("voicemail_policy", "voicemail_message")}),
    )

    @admin.display(description="progress")
    def progress(self, obj: Campaign) -> str:
        return _progress_bar(campaign_progress(obj))

    @admin.display(description="calling now")
    def in_progress(self, obj: Campaign) -> int:
        return campaign_progress(obj).in_progress

    @admin.display(description="progress")
    def progress_detail(self, obj: Campaign) -> str:
        if obj.pk is None:
            return "—"
        p = campaign_progress(obj)
        outcomes = ", ".join(f"{label}: {n}" for label, n in p.outcomes.items()) or "no calls yet"
        return format_html(
            "{}<p>{} contacts: {} finished, {} calling now, {} waiting. {}. Cost so far: {} {}.</p>",
            _progress_bar(p),
            p.total,
            p.finished,
            p.in_progress,
            p.waiting,
            outcomes,
            f"{p.cost:.2f}",
            p.currency,
        )

    @admin.display(description="contacts")
    def tools(self, obj: Campaign) -> str:
        if obj.pk is None:
            return "Save the campaign first, then upload its contact list."
        return format_html(
            '<a class="button" href="{}">Upload contacts (CSV)</a> <a class="button" href="{}">Preview a prompt</a> '
            '<a class="button" href="{}">Export outcomes (CSV)</a> <a href="{}">See the contacts</a>',
            reverse("admin:campaigns_campaign_upload", args=[obj.pk]),
            reverse("admin:campaigns_campaign_preview", args=[obj.pk]),
            reverse("admin:campaigns_campaign_export", args=[obj.pk]),
            reverse("admin:campaigns_contact_changelist") + f"?campaign__id__exact={obj.pk}",
        )

    def get_urls(self):
        own = [
            path("<int:pk>/upload/", self.admin_site.admin_view(self.upload_view), name="campaigns_campaign_upload"),
            path("<int:pk>/preview/", self.admin_site.admin_view(self.preview_view), name="campaigns_campaign_preview"),
            path("<int:pk>/export/", self.admin_site.admin_view(self.export_view), name="campaigns_campaign_export"),
        ]
        return own + super().get_urls()

    def _move(self, request, queryset, action: str) -> None:
        for campaign in queryset:
            try:
                services.campaign_move(campaign_pk=campaign.pk, action=action)
            except services.CampaignError as exc:
                self.message_user(request, f"{campaign}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{campaign}: done ({action}).", messages.SUCCESS)

    @admin.action(description="Start calling")
    def start(self, request, queryset):
        self._move(request, queryset, "start")

    @admin.action(description="Pause (calls now ringing finish)")
    def pause(self, request, queryset):
        self._move(request, queryset, "pause")

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        self._move(request, queryset, "resume")

    @admin.action(description="Cancel (no more calls)")
    def cancel(self, request, queryset):
        self._move(request, queryset, "cancel")

    def upload_view(self, request, pk: int):
        """Step 1: choose a file → every row checked and shown; step 2: confirm → the good rows are added."""
        campaign = get_object_or_404(Campaign.objects.select_related("assistant"), pk=pk)
        if not self.has_change_permission(request, campaign):
            return redirect("admin:index")
        form = UploadForm(request.POST or None, request.FILES or None)
        parsed = None
        data = ""
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload is not None:
                if upload.size > MAX_UPLOAD_BYTES:
                    messages.error(request, "The file is larger than 10 MB: split the list.")
                    return redirect(request.path)
                raw = upload.read()
            else:
                raw = form.cleaned_data["data"].encode()
            existing = set(campaign.contacts.values_list("number", flat=True))
            parsed = parse_contacts(raw, needed=needed_variables(campaign), existing=existing)
            data = raw.decode("utf-8-sig", errors="replace")
            if upload is None and "confirm" in request.POST and not parsed.errors:
                added = services.contacts_import(campaign=campaign, rows=parsed.good)
                skipped = len(parsed.bad)
                messages.success(
                    request,
                    f"{added} contacts added." + (f" {skipped} rows with problems were left out." if skipped else ""),
                )
                return redirect("admin:campaigns_campaign_change", pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Upload contacts: {campaign}",
            "campaign": campaign,
            "form": form,
            "parsed": parsed,
            "data": data,
            "needed": sorted(needed_variables(campaign)),
            "opts": self.model._meta,
        }
        return render(request, "admin/campaigns/upload.html", context)

    def preview_view(self, request, pk: int):
        """What one contact's call says: the welcome message and instructions with their variables filled in."""
        campaign = get_object_or_404(Campaign.objects.select_related("assistant"), pk=pk)
        contacts = list(campaign.contacts.order_by("pk")[:200])
        chosen = None
        rendered = error = None
        wanted = request.GET.get("contact")
        if wanted and wanted.isdigit():
            chosen = (
                next((c for c in contacts if c.pk == int(wanted)), None) or campaign.contacts.filter(pk=wanted).first()
            )
        elif contacts:
            chosen = contacts[0]
        if chosen is not None:
            variables = {str(k): str(v) for k, v in (chosen.variables or {}).items()}
            try:
                rendered = render_prompt(campaign.assistant, variables)
                rendered["voicemail_message"] = render_text(
                    campaign.voicemail_message, variables, where="The voicemail message"
                )
            except MissingVariable as exc:
                error = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Prompt preview: {campaign}",
            "campaign": campaign,
            "contacts": contacts,
            "chosen": chosen,
            "rendered": rendered,
            "error": error,
            "opts": self.model._meta,
        }
        return render(request, "admin/campaigns/preview.html", context)

    def export_view(self, request, pk: int):
        campaign = get_object_or_404(Campaign, pk=pk)
        response = HttpResponse(campaign_export_csv(campaign), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-outcomes.csv"'
        return response


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("number", "campaign", "status", "attempts", "last_outcome", "answered_by", "next_attempt_at")
    list_filter = ("status", "last_outcome", "answered_by", "campaign")
    search_fields = ("number",)
    readonly_fields = ("status", "attempts", "last_outcome", "answered_by", "outbound", "claimed_at", "created_at")
    inlines = [ContactAttemptInline]


class DoNotCallForm(forms.ModelForm):
    class Meta:
        model = DoNotCall
        fields = ("number", "reason")

    def clean_number(self) -> str:
        try:
            return normalize_e164(self.cleaned_data["number"])
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


@admin.register(DoNotCall)
class DoNotCallAdmin(admin.ModelAdmin):
    form = DoNotCallForm
    list_display = ("number", "reason", "source", "created_at")
    list_filter = ("source",)
    search_fields = ("number", "reason")

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
        else:
            services.do_not_call_add(number=obj.number, reason=obj.reason, source="admin")


class CallCampaignAdminMixin:
    """For CallAdmin (settings.CALL_ADMIN_EXTENSIONS): a campaign call's contact and who answered."""

    @admin.display(description="campaign")
    def campaign_contact(self, obj) -> str:
        attempt = ContactAttempt.objects.filter(outbound__call=obj).select_related("contact__campaign").first()
        if attempt is None:
            return "—"
        contact = attempt.contact
        return format_html(
            '<a href="{}">{}</a>, contact <a href="{}">{}</a>; answered by: {}',
            reverse("admin:campaigns_campaign_change", args=[contact.campaign_id]),
            contact.campaign,
            reverse("admin:campaigns_contact_change", args=[contact.pk]),
            contact.number,
            contact.get_answered_by_display() or "not known yet",
        )

    def _is_campaign_call(self, obj) -> bool:
        return obj is not None and ContactAttempt.objects.filter(outbound__call=obj).exists()

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "campaign_contact"] if self._is_campaign_call(obj) else fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if self._is_campaign_call(obj):
            fieldsets.append(("Campaign", {"fields": ("campaign_contact",)}))
        return fieldsets
