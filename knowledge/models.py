"""Documents an assistant may look things up in during a call, cut into passages that search finds."""

from __future__ import annotations

from django.contrib.postgres.search import SearchVectorField
from django.core.files.storage import storages
from django.db import models


def knowledge_storage():
    """The configured storage (settings.STORAGES["knowledge"]): disk by default, object storage in production."""
    return storages["knowledge"]


# Text search configurations for PostgreSQL, by the assistants' two-letter language codes.
SEARCH_CONFIGS = {
    "sv": "swedish",
    "en": "english",
    "da": "danish",
    "nb": "norwegian",
    "no": "norwegian",
    "fi": "finnish",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "nl": "dutch",
    "pt": "portuguese",
}


def search_config(language: str) -> str:
    """The PostgreSQL text search configuration for a language code ("simple" when unknown)."""
    return SEARCH_CONFIGS.get((language or "").lower()[:2], "simple")


class DocumentKind(models.TextChoices):
    PDF = "pdf", "PDF"
    DOCX = "docx", "Word (.docx)"
    TEXT = "text", "Plain text"
    MARKDOWN = "markdown", "Markdown"
    URL = "url", "Web page"


class DocumentStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Document(models.Model):
    title = models.CharField(
        max_length=200,
        blank=True,
        help_text="A short name the assistant sees with each passage, e.g. “Opening hours and prices”. "
        "Left empty: the web page's title or the file's name.",
    )
    kind = models.CharField(max_length=10, choices=DocumentKind.choices, default=DocumentKind.TEXT)
    file = models.FileField(
        upload_to="documents/%Y/%m/",
        storage=knowledge_storage,
        blank=True,
        max_length=300,
        help_text="A PDF, Word (.docx), text (.txt) or Markdown (.md) file. "
        "Leave it empty to paste text or give a web page instead.",
    )
    text = models.TextField(
        blank=True,
        help_text="Or paste the text here (Markdown headings like “# Prices” split it into sections).",
    )
    source_url = models.URLField(
        "web page",
        blank=True,
        max_length=500,
        help_text="Or a web page address: it is read once now; use “Fetch the web page again” after it changes.",
    )
    language = models.CharField(
        max_length=8,
        default="sv",
        help_text="The document's language as a two-letter code (sv, en…): words are matched by their stem in it.",
    )
    assistants = models.ManyToManyField(
        "assistants.Assistant",
        blank=True,
        related_name="knowledge_documents",
        verbose_name="used by",
        help_text="The assistants that may look things up in this document during calls.",
    )
    status = models.CharField(max_length=12, choices=DocumentStatus.choices, default=DocumentStatus.PROCESSING)
    error = models.TextField(blank=True, help_text="Why the document could not be read.")
    size_bytes = models.PositiveIntegerField(default=0)
    passage_count = models.PositiveIntegerField("passages", default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["title", "pk"]

    def __str__(self) -> str:
        return self.title


def _use_str(self) -> str:
    return f"{self.document} – {self.assistant}"


# The assistant page lists its documents through the plain many-to-many table (an explicit through
# model would take the "used by" chooser off the document page): name its rows in words.
Document.assistants.through.__str__ = _use_str


class Passage(models.Model):
    """A piece of a document, a few paragraphs long, under its nearest heading."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="passages")
    position = models.PositiveIntegerField()
    heading = models.CharField(max_length=300, blank=True)
    text = models.TextField()
    config = models.CharField(max_length=20, default="simple", help_text="PostgreSQL text search configuration.")
    # PostgreSQL only (the GIN index is made by the migration there); SQLite searches knowledge_passage_fts.
    search_vector = SearchVectorField(null=True, editable=False)
    embedding = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["document", "position"]
        constraints = [models.UniqueConstraint(fields=["document", "position"], name="knowledge_passage_position")]

    def __str__(self) -> str:
        return f"{self.document} #{self.position}"
