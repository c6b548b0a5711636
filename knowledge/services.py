"""Writes of the knowledge app: reading a document into passages, and fetching a web page."""

from __future__ import annotations

import logging

import httpx2
from django.conf import settings
from django.contrib.postgres.search import SearchVector
from django.db import connection, transaction
from django.db.models import Value
from django.utils import timezone

from . import embeddings
from .chunking import chunk
from .models import Document, DocumentKind, DocumentStatus, Passage, search_config
from .parsing import Section, Unreadable, check_size, parse, parse_html, parse_markdown

log = logging.getLogger(__name__)

USER_AGENT = "voiceagent-knowledge/1.0"
PAGE_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown", "application/pdf")


def fetch_page(url: str) -> tuple[str, list[Section], int]:
    """A web page's title, sections and size, read once with a time and size limit."""
    limit = settings.KNOWLEDGE_MAX_BYTES
    try:
        with httpx2.stream(
            "GET",
            url,
            timeout=settings.KNOWLEDGE_FETCH_TIMEOUT,
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT, "Accept": "text/html, text/plain, application/pdf"},
        ) as response:
            if response.status_code >= 400:
                raise Unreadable(
                    f"The web page answered with an error (HTTP {response.status_code}). Check the address."
                )
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind not in PAGE_TYPES:
                raise Unreadable(f"The address is not a web page or text (it sends {kind or 'an unknown type'}).")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit():
                check_size(int(declared))
            body = bytearray()
            for part in response.iter_bytes():
                body += part
                if len(body) > limit:
                    check_size(len(body))
    except Unreadable:
        raise
    except httpx2.TimeoutException:
        raise Unreadable(f"The web page did not answer within {settings.KNOWLEDGE_FETCH_TIMEOUT:g} seconds.") from None
    except httpx2.HTTPError as exc:
        raise Unreadable(f"The web page could not be read ({type(exc).__name__}). Check the address.") from None
    data = bytes(body)
    if kind == "application/pdf":
        return "", parse("pdf", data), len(data)
    if kind in ("text/plain", "text/markdown"):
        return "", parse("markdown", data), len(data)
    title, sections = parse_html(data)
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise Unreadable("The web page has no text in it (it may be built by JavaScript). Paste the text instead.")
    return title, sections, len(data)


def _read(document: Document) -> tuple[list[Section], int]:
    if document.kind == DocumentKind.URL:
        if not document.source_url:
            raise Unreadable("Give the web page's address.")
        title, sections, size = fetch_page(document.source_url)
        if not document.title:
            document.title = (title or document.source_url)[:200]
        return sections, size
    if document.file:
        if not document.title:
            document.title = document.file.name.rsplit("/", 1)[-1][:200]
        check_size(document.file.size)
        with document.file.open("rb") as handle:
            data = handle.read()
        return parse(document.kind, data), len(data)
    if document.text.strip():
        if not document.title:
            document.title = document.text.strip().splitlines()[0].lstrip("# ")[:80]
        data = document.text.encode()
        return parse_markdown(data), len(data)
    raise Unreadable("The document is empty: upload a file, paste text or give a web page address.")


def document_process(*, document_pk: int) -> Document:
    """Read the document (its file, text or web page) into passages: ready, or failed with the reason.

    The reading (and a web page's fetching) happens outside any transaction; the passages are
    replaced in one, so a search never sees half a document.
    """
    document = Document.objects.get(pk=document_pk)
    try:
        sections, size = _read(document)
        chunks = chunk(sections)
        if not chunks:
            raise Unreadable("The document has no text in it.")
        vectors = _vectors(chunks)
    except Unreadable as exc:
        return _document_failed(document, str(exc))
    except Exception as exc:
        log.exception("knowledge document %s could not be read", document_pk)
        return _document_failed(document, f"The document could not be read ({type(exc).__name__}).")
    return _passages_replace(document, chunks, size, vectors)


def _vectors(chunks) -> list | None:
    """Embeddings for hybrid ranking, when on; None (full-text only) when off or unavailable."""
    if not embeddings.enabled():
        return None
    try:
        return embeddings.embed([f"{c.heading}\n{c.text}" for c in chunks], timeout=30.0)
    except embeddings.EmbeddingsUnavailable as exc:
        log.warning("knowledge: no embeddings for the passages (%s); full-text search only", exc)
        return None


@transaction.atomic
def _document_failed(document: Document, message: str) -> Document:
    document.status, document.error, document.processed_at = DocumentStatus.FAILED, message, timezone.now()
    document.title = document.title or "(unreadable document)"
    document.passages.all().delete()
    document.passage_count = 0
    document.save(update_fields=["title", "status", "error", "passage_count", "processed_at", "updated_at"])
    return document


@transaction.atomic
def _passages_replace(document: Document, chunks, size: int, vectors: list | None = None) -> Document:
    config = search_config(document.language)
    document.passages.all().delete()
    Passage.objects.bulk_create(
        Passage(
            document=document,
            position=n,
            heading=c.heading,
            text=c.text,
            config=config,
            embedding=vectors[n] if vectors else None,
        )
        for n, c in enumerate(chunks)
    )
    if connection.vendor == "postgresql":
        document.passages.update(
            search_vector=SearchVector("heading", weight="A", config=Value(config))
            + SearchVector("text", weight="B", config=Value(config))
        )
    document.status, document.error = DocumentStatus.READY, ""
    document.size_bytes, document.passage_count, document.processed_at = size, len(chunks), timezone.now()
    document.save(
        update_fields=["title", "status", "error", "size_bytes", "passage_count", "processed_at", "updated_at"]
    )
    return document


@transaction.atomic
def document_create(
    *, title: str, kind: str, text: str = "", source_url: str = "", language: str = "sv", file=None, assistants=()
) -> Document:
    """A new document (processing); call `document_process` next."""
    document = Document(title=title, kind=kind, text=text, source_url=source_url, language=language)
    if file is not None:
        document.file = file
    document.save()
    if assistants:
        document.assistants.set(assistants)
    return document
