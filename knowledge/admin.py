"""The Knowledge section of admin (documents: upload, paste, web page; status, passages, used by),
and the assistant page's part: which documents it uses and a "Try a question" box."""

from __future__ import annotations

import json
import time

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from assistants.admin_helpers import https_formfield
from assistants.models import Assistant

from . import services
from .models import Document, DocumentKind, DocumentStatus, search_config
from .parsing import Unreadable, check_size, kind_for_name
from .search import search_passages

CONTENT_FIELDS = ("file", "text", "source_url", "language")


class DocumentForm(forms.ModelForm):
    class Meta:
        formfield_callback = https_formfield
        model = Document
        fields = ("title", "file", "text", "source_url", "language", "assistants")

    def clean(self):
        data = super().clean()
        upload, text, url = data.get("file"), (data.get("text") or "").strip(), data.get("source_url")
        given = [name for name, value in (("file", upload), ("text", text), ("source_url", url)) if value]
        if not given:
            raise forms.ValidationError("Upload a file, paste text or give a web page address.")
        if len(given) > 1:
            raise forms.ValidationError("Give one of these only: a file, pasted text or a web page address.")
        try:
            if upload and hasattr(upload, "content_type"):  # a new upload
                check_size(upload.size)
                self.instance.kind = kind_for_name(upload.name)
            elif upload:
                pass  # the file it already has
            elif url:
                self.instance.kind = DocumentKind.URL
            else:
                self.instance.kind = DocumentKind.MARKDOWN
        except Unreadable as exc:
            self.add_error("file", str(exc))
        return data


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    form = DocumentForm
    list_display = ("title", "kind", "status_shown", "passage_count", "size_shown", "used_by", "updated_at")
    list_filter = ("status", "kind", "assistants")
    search_fields = ("title", "source_url", "passages__text")
    readonly_fields = ("kind", "status_shown", "passage_count", "size_shown", "processed_at", "passages_shown")
    filter_horizontal = ("assistants",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ["read_again"]
    fieldsets = (
        (None, {"fields": ("title", "assistants")}),
        (
            "Content",
            {
                "description": "Give one of these: a file to upload, text to paste, or a web page address.",
                "fields": ("file", "text", "source_url", "language"),
            },
        ),
        ("Status", {"fields": ("kind", "status_shown", "passage_count", "size_shown", "processed_at")}),
        (
            "Passages",
            {"fields": ("passages_shown",), "description": "What search finds: the document cut into passages."},
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("assistants")

    @admin.display(description="status", ordering="status")
    def status_shown(self, obj: Document) -> str:
        if obj.status == DocumentStatus.FAILED:
            return format_html('<span style="color:#b00">Failed: {}</span>', obj.error)
        return obj.get_status_display()

    @admin.display(description="size", ordering="size_bytes")
    def size_shown(self, obj: Document) -> str:
        return f"{obj.size_bytes / 1024:.1f} KB" if obj.size_bytes else "–"

    @admin.display(description="used by")
    def used_by(self, obj: Document) -> str:
        return ", ".join(a.name for a in obj.assistants.all()) or "–"

    @admin.display(description="passages")
    def passages_shown(self, obj: Document) -> str:
        passages = list(obj.passages.all()[:50]) if obj.pk else []
        if not passages:
            return "–"
        more = obj.passage_count - len(passages)
        return format_html(
            "{}{}",
            format_html_join(
                "", "<p><b>{}. {}</b><br>{}</p>", ((p.position + 1, p.heading or "", p.text[:400]) for p in passages)
            ),
            f"… and {more} more" if more > 0 else "",
        )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change or any(name in form.changed_data for name in CONTENT_FIELDS):
            self._process(request, form.instance)

    def _process(self, request, document: Document) -> None:
        document = services.document_process(document_pk=document.pk)
        if document.status == DocumentStatus.READY:
            self.message_user(
                request, f"“{document.title}” is ready: {document.passage_count} passages.", messages.SUCCESS
            )
        else:
            self.message_user(request, f"“{document.title}” could not be read: {document.error}", messages.ERROR)

    @admin.action(description="Read again (fetch the web page again)", permissions=["change"])
    def read_again(self, request, queryset):
        for document in queryset:
            self._process(request, document)

    def get_urls(self):
        return [
            path("try/<int:assistant_id>/", self.admin_site.admin_view(self.try_question), name="knowledge_try"),
            *super().get_urls(),
        ]

    def try_question(self, request, assistant_id: int) -> JsonResponse:
        """The passages an assistant would get for a question, with scores (the "Try a question" box)."""
        if not request.user.has_perm("assistants.view_assistant"):
            return JsonResponse({"error": "You may not see assistants."}, status=403)
        assistant = get_object_or_404(Assistant, pk=assistant_id)
        started = time.perf_counter()
        hits = search_passages(
            assistant_id=assistant.pk, query=request.GET.get("q", "")[:500], language=assistant.language
        )
        return JsonResponse(
            {
                "ms": round((time.perf_counter() - started) * 1000, 1),
                "config": search_config(assistant.language),
                "passages": [
                    {"document": h.document_title, "heading": h.heading, "text": h.text, "score": h.score} for h in hits
                ],
            }
        )


class AssistantDocumentInline(admin.TabularInline):
    model = Document.assistants.through
    extra = 0
    fields = ("document",)
    verbose_name = "knowledge document"
    verbose_name_plural = "Knowledge documents (the assistant may look things up in these during calls)"


TRY_BOX = """
<div class="knowledge-try">
  <input type="search" id="knowledge-q" size="60" placeholder="{placeholder}">
  <button type="button" class="button" id="knowledge-go">Try</button>
  <div id="knowledge-results"></div>
</div>
<script>
(function() {{
  var url = {url};
  function show(data) {{
    var box = document.getElementById("knowledge-results");
    box.textContent = "";
    var info = document.createElement("p");
    info.textContent = data.error || (data.passages.length + " passages in " + data.ms + " ms");
    box.appendChild(info);
    (data.passages || []).forEach(function(p) {{
      var item = document.createElement("div");
      item.className = "knowledge-hit";
      var head = document.createElement("b");
      head.textContent = p.document + (p.heading ? " – " + p.heading : "") + " (score " + p.score + ")";
      var text = document.createElement("p");
      text.textContent = p.text;
      item.appendChild(head); item.appendChild(text); box.appendChild(item);
    }});
  }}
  function go(event) {{
    if (event) event.preventDefault();
    var q = document.getElementById("knowledge-q").value;
    fetch(url + "?q=" + encodeURIComponent(q), {{credentials: "same-origin"}})
      .then(function(r) {{ return r.json(); }}).then(show);
  }}
  document.getElementById("knowledge-go").addEventListener("click", go);
  document.getElementById("knowledge-q").addEventListener("keydown", function(e) {{ if (e.key === "Enter") go(e); }});
}})();
</script>
"""


class AssistantKnowledgeAdminMixin:
    """For AssistantAdmin (settings.ASSISTANT_ADMIN_EXTENSIONS): its documents, and "Try a question"."""

    def get_inlines(self, request, obj):
        return [*super().get_inlines(request, obj), AssistantDocumentInline]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        section = (
            "Knowledge: try a question",
            {
                "description": "Type what a caller might ask: these are the passages the assistant would get.",
                "fields": ("knowledge_try",),
            },
        )
        return (*fieldsets, section)

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "knowledge_try")

    @admin.display(description="question")
    def knowledge_try(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "–"
        url = reverse("admin:knowledge_try", args=[obj.pk])
        return format_html(
            TRY_BOX, placeholder="e.g. When are you open on Saturdays?", url=mark_safe(json.dumps(url))
        )  # a reversed URL as JSON: nothing to escape
