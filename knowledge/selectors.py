"""Reads of the knowledge app."""

from __future__ import annotations

from .models import Document, DocumentStatus


def ready_document_count(assistant_id: int) -> int:
    """How many ready documents an assistant may look things up in."""
    return Document.objects.filter(assistants=assistant_id, status=DocumentStatus.READY).count()
