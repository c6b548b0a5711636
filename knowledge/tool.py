"""The built-in tool `search_knowledge` (settings.CALL_BUILTIN_TOOLS), for assistants with documents.

The search runs in a database thread (run_db), never on the event loop; the model gets the best
few passages with their documents' titles, cut to a strict size budget
(settings.KNOWLEDGE_TOOL_MAX_CHARS), and the transcript shows the query and what it got.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.conf import settings

from calls.db import run_db
from tools.builtins import Result

from .search import search_passages

if TYPE_CHECKING:
    from calls.live.types import CallHandle

PASSAGES = 4
MIN_PASSAGE_CHARS = 200

DESCRIPTIONS = {
    "sv": (
        "Sök i företagets dokument (öppettider, priser, villkor, leveransområden, vanliga frågor). "
        "Använd det innan du svarar på en sakfråga du inte säkert vet svaret på, och svara utifrån "
        "det som hittas. Hittas inget, säg det ärligt.",
        "Vad som ska sökas, med nyckelord ur frågan, t.ex. 'öppettider lördag'.",
    ),
    "en": (
        "Search the business's documents (opening hours, prices, policies, delivery areas, FAQs). Use it "
        "before answering a factual question you are not sure of, and answer from what it finds. If "
        "nothing is found, say so honestly.",
        "What to look for, as keywords from the question, e.g. 'opening hours saturday'.",
    ),
}


def definition(language: str) -> dict[str, Any]:
    """The function as the model sees it, described in the assistant's language (English otherwise)."""
    description, query = DESCRIPTIONS.get((language or "")[:2].lower(), DESCRIPTIONS["en"])
    return {
        "type": "function",
        "name": "search_knowledge",
        "description": description,
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": query}},
            "required": ["query"],
        },
    }


def within_budget(hits, budget: int) -> list[dict[str, str]]:
    """The passages, best first, cut so that all of them together stay within `budget` characters."""
    out: list[dict[str, str]] = []
    left = budget
    for hit in hits:
        title = hit.document_title + (f" – {hit.heading}" if hit.heading else "")
        room = left - len(title) - 40
        if room < MIN_PASSAGE_CHARS and out:
            break
        text = hit.text if len(hit.text) <= room else hit.text[: max(room, 0)].rsplit(" ", 1)[0] + " …"
        out.append({"document": title, "text": text})
        left -= len(title) + len(text) + 40
    return out


async def search_knowledge(session: CallHandle, arguments: dict[str, Any]) -> Result:
    query = str(arguments.get("query") or "").strip()[:300]
    if not query:
        return Result(json.dumps({"error": "Say what to search for."}), "error", "No query.")
    config = session.config
    hits = await run_db(search_passages)(assistant_id=config.id, query=query, language=config.language, limit=PASSAGES)
    passages = within_budget(hits, settings.KNOWLEDGE_TOOL_MAX_CHARS)
    if not passages:
        output = {"passages": [], "note": "Nothing in the documents matches. Say you do not know rather than guess."}
        shown = f"search_knowledge “{query}” → nothing found"
    else:
        output = {"passages": passages, "note": "Answer from these passages only; do not read them out word for word."}
        shown = f"search_knowledge “{query}” → " + "; ".join(f"[{p['document']}] {p['text'][:160]}" for p in passages)
    return Result(json.dumps(output, ensure_ascii=False), shown=shown)


def builtin_tools(config) -> dict[str, tuple[dict[str, Any], Any]]:
    """settings.CALL_BUILTIN_TOOLS: `search_knowledge` for an assistant with ready documents."""
    if not config.extra.get("knowledge_documents") or config.id is None:
        return {}
    return {"search_knowledge": (definition(config.language), search_knowledge)}
