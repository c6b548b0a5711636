"""Optional hybrid ranking (settings.KNOWLEDGE_EMBEDDINGS): OpenAI embeddings per passage, and
cosine similarity of the question to the full-text search's candidates, computed in process.

Full-text search stays the gate (only its candidates are re-ranked), so a failing embeddings
service costs ranking quality, never answers: every failure falls back to the full-text order.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import httpx2
from django.conf import settings

log = logging.getLogger(__name__)

BATCH = 100
WORDS_WEIGHT = 0.3


class EmbeddingsUnavailable(Exception):
    pass


def enabled() -> bool:
    return bool(settings.KNOWLEDGE_EMBEDDINGS and settings.OPENAI_API_KEY)


def embed(texts: list[str], *, timeout: float) -> list[list[float]]:
    """One vector per text, from the embeddings API (EmbeddingsUnavailable on any failure)."""
    vectors: list[list[float]] = []
    for start in range(0, len(texts), BATCH):
        try:
            response = httpx2.post(
                settings.KNOWLEDGE_EMBEDDINGS_URL,
                json={"model": settings.KNOWLEDGE_EMBEDDING_MODEL, "input": texts[start : start + BATCH]},
                headers={"Authorization": f"Bearer {settings.OPENAI_API_KEY}"},
                timeout=timeout,
            )
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors += [[float(x) for x in item["embedding"]] for item in data]
        except (httpx2.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise EmbeddingsUnavailable(f"{type(exc).__name__}: {exc}") from None
    if len(vectors) != len(texts):
        raise EmbeddingsUnavailable("the service answered with the wrong number of vectors")
    return vectors


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def rerank(query: str, candidates: list[tuple[Any, list[float] | None]], limit: int) -> list[Any]:
    """Candidates (hit, vector), best full-text first, re-ranked mostly by meaning.

    Every candidate already holds the question's words (full text is the gate), so meaning decides
    among them and the full-text score (relative to the best) weighs in a little.
    """
    try:
        [question] = embed([query], timeout=settings.KNOWLEDGE_EMBEDDINGS_QUERY_TIMEOUT)
    except EmbeddingsUnavailable as exc:
        log.warning("knowledge: no embedding for the question (%s); full-text order", exc)
        return [hit for hit, _ in candidates[:limit]]
    top = max((hit.score for hit, _ in candidates), default=0.0) or 1.0
    scored = [
        (WORDS_WEIGHT * hit.score / top + (1 - WORDS_WEIGHT) * (cosine(question, vector) if vector else 0.0), n, hit)
        for n, (hit, vector) in enumerate(candidates)
    ]
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [hit for _, _, hit in scored[:limit]]
