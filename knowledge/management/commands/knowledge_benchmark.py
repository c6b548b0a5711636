"""Times `search_passages` over many passages (bench/knowledge_search.py runs it on a throwaway database).

Makes one assistant with documents of generated text (read through the real path: chunking,
search vectors), asks it questions of real and made-up words, prints the times as JSON, and
removes what it made.
"""

from __future__ import annotations

import json
import random
import statistics
import time

from django.core.management.base import BaseCommand
from django.db import connection

from assistants.models import Assistant
from knowledge import services
from knowledge.models import Document, Passage
from knowledge.search import search_passages

WORDS = (
    "öppettider lördag söndag pris leverans pizza kebab sallad dryck betalning kort swish faktura retur byte "
    "garanti reklamation adress parkering buss tåg frukost lunch middag allergi gluten laktos vegansk barn "
    "rabatt medlem bokning avbokning bord grupp företag catering present kupong öppet stängt helgdag jul "
    "midsommar påsk semester telefon mejl chatt kundtjänst reservdel montering frakt hemleverans upphämtning"
).split()


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyzåäö"
    made = {"".join(rng.choice(letters) for _ in range(rng.randint(4, 10))) for _ in range(size)}
    return WORDS + sorted(made)


class Command(BaseCommand):
    help = "Time knowledge look-ups over N generated passages; prints JSON."

    def add_arguments(self, parser):
        parser.add_argument("--passages", type=int, default=10_000)
        parser.add_argument("--queries", type=int, default=1000)
        parser.add_argument("--seed", type=int, default=17)

    def handle(self, *args, passages: int, queries: int, seed: int, **options):
        rng = random.Random(seed)
        vocabulary = _vocabulary(rng, 5000)
        assistant = Assistant.objects.create(name="Knowledge benchmark", instructions="x", language="sv")
        per_document = 100
        started = time.perf_counter()
        try:
            for n in range(0, passages, per_document):
                sections = []
                for s in range(min(per_document, passages - n)):
                    heading = " ".join(rng.choices(vocabulary, k=3))
                    body = " ".join(rng.choices(vocabulary, k=rng.randint(60, 110))) + "."
                    sections.append(f"# {heading} {s}\n{body}")
                document = services.document_create(
                    title=f"Document {n // per_document}",
                    kind="markdown",
                    text="\n\n".join(sections),
                    language="sv",
                    assistants=[assistant],
                )
                services.document_process(document_pk=document.pk)
            loaded_s = time.perf_counter() - started
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE knowledge_passage")
            count = Passage.objects.filter(document__assistants=assistant).count()
            questions = [
                " ".join(rng.choices(WORDS if i % 2 else vocabulary, k=rng.randint(2, 6))) for i in range(queries)
            ]
            for question in questions[:50]:  # warm the caches, as a running server has them
                search_passages(assistant_id=assistant.pk, query=question, language="sv")
            times, found = [], 0
            for question in questions:
                t0 = time.perf_counter()
                hits = search_passages(assistant_id=assistant.pk, query=question, language="sv")
                times.append((time.perf_counter() - t0) * 1000)
                found += bool(hits)
            times.sort()
            q = statistics.quantiles(times, n=100)
            report = {
                "database": connection.vendor,
                "passages": count,
                "queries": queries,
                "answered": found,
                "load_seconds": round(loaded_s, 1),
                "p50_ms": round(q[49], 2),
                "p95_ms": round(q[94], 2),
                "p99_ms": round(q[98], 2),
                "max_ms": round(times[-1], 2),
            }
        finally:
            Document.objects.filter(assistants=assistant).delete()
            assistant.delete()
        self.stdout.write(json.dumps(report))
