"""Finding the passages that answer a question, among the documents an assistant uses.

PostgreSQL: full-text search on each passage's tsvector (heading weighted above text) with the
assistant's language configuration, so "öppettider" finds "öppettiden"; a GIN index; `ts_rank_cd`.
The query is the caller's words as `websearch_to_tsquery` reads them (quoted phrases, -not) OR'ed
with every word as a prefix, so a question whose words are not all in one passage still finds the
passage with most of them, ranked first when it also holds the phrase.
SQLite: the FTS5 table `knowledge_passage_fts` (created and kept in sync by triggers from the
migration), ranked by bm25.
With settings.KNOWLEDGE_EMBEDDINGS, more candidates are fetched and re-ranked by meaning (embeddings.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from django.db import connection, transaction

from . import embeddings
from .models import search_config

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 16
CANDIDATES_PER_HIT = 6  # hybrid ranking re-ranks this many full-text candidates per passage returned


@dataclass(frozen=True)
class Hit:
    passage_id: int
    document_id: int
    document_title: str
    heading: str
    text: str
    score: float


def _words(query: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(query) if len(w) > 1 or w.isdigit()))[:MAX_WORDS]


_PG_SQL = """
WITH q AS (
    SELECT websearch_to_tsquery(%(config)s::regconfig, %(query)s) AS whole,
           to_tsquery(%(config)s::regconfig, %(prefixes)s) AS words
)
SELECT p.id, p.document_id, d.title, p.heading, p.text, {embedding},
       ts_rank_cd(p.search_vector, q.whole || q.words, 1)
         * CASE WHEN p.search_vector @@ q.whole THEN 2 ELSE 1 END AS score
FROM knowledge_passage p
JOIN knowledge_document d ON d.id = p.document_id
JOIN knowledge_document_assistants da ON da.document_id = p.document_id, q
WHERE da.assistant_id = %(assistant)s AND d.status = 'ready'
  AND p.search_vector @@ (q.whole || q.words)
ORDER BY score DESC, p.id
LIMIT %(limit)s
"""

_SQLITE_SQL = """
SELECT p.id, p.document_id, d.title, p.heading, p.text, {embedding}, -bm25(knowledge_passage_fts, 2.0, 1.0) AS score
FROM knowledge_passage_fts f
JOIN knowledge_passage p ON p.id = f.rowid
JOIN knowledge_document d ON d.id = p.document_id
JOIN knowledge_document_assistants da ON da.document_id = p.document_id
WHERE knowledge_passage_fts MATCH %s AND da.assistant_id = %s AND d.status = 'ready'
ORDER BY score DESC, p.id
LIMIT %s
"""


def search_passages(*, assistant_id: int, query: str, language: str = "", limit: int = 5) -> list[Hit]:
    """The best `limit` passages for `query` in the ready documents `assistant_id` uses, best first."""
    words = _words(query)
    if not words:
        return []
    hybrid = embeddings.enabled()
    wanted = max(limit * CANDIDATES_PER_HIT, 30) if hybrid else limit
    column = "p.embedding" if hybrid else "NULL"
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            prefixes = " | ".join(f"{w}:*" for w in words)
            # The planner takes a tsquery to match far more rows than it does and picks a scan that
            # matches every passage's vector (several times slower at 10,000 passages): use the index.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(
                _PG_SQL.format(embedding=column),
                {
                    "config": search_config(language),
                    "query": query[:500],
                    "prefixes": prefixes,
                    "assistant": assistant_id,
                    "limit": limit,
                },
            )
        else:
            match = " OR ".join(f'"{w}"*' for w in words)
            cursor.execute(_SQLITE_SQL.format(embedding=column), [match, assistant_id, wanted])
        rows = cursor.fetchall()
    hits = [(Hit(r[0], r[1], r[2], r[3], r[4], float(f"{float(r[6]):.4g}")), _vector(r[5])) for r in rows]
    if not hybrid:
        return [hit for hit, _ in hits]
    return embeddings.rerank(query, hits, limit)


def _vector(value) -> list[float] | None:
    if isinstance(value, str):
        return json.loads(value)
    return value
