"""Finding the passages that answer a question, among the documents an assistant uses.

PostgreSQL: full-text search on each passage's tsvector (heading weighted above text) with the
assistant's language configuration, so "öppettider" finds "öppettiden"; a GIN index; `ts_rank_cd`.
The query is the caller's words as `websearch_to_tsquery` reads them (quoted phrases, -not) OR'ed
with every word as a prefix, so a question whose words are not all in one passage still finds the
passage with most of them, ranked first when it also holds the phrase.
SQLite: the FTS5 table `knowledge_passage_fts` (created and kept in sync by triggers from the
migration), ranked by bm25.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection, transaction

from .models import search_config

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 16


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
SELECT p.id, p.document_id, d.title, p.heading, p.text,
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
SELECT p.id, p.document_id, d.title, p.heading, p.text, -bm25(knowledge_passage_fts, 2.0, 1.0) AS score
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
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            prefixes = " | ".join(f"{w}:*" for w in words)
            # The planner takes a tsquery to match far more rows than it does and picks a scan that
            # matches every passage's vector (several times slower at 10,000 passages): use the index.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(
                _PG_SQL,
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
            cursor.execute(_SQLITE_SQL, [match, assistant_id, limit])
        rows = cursor.fetchall()
    return [Hit(r[0], r[1], r[2], r[3], r[4], float(f"{float(r[5]):.4g}")) for r in rows]
