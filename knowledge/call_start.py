"""The knowledge app's part in a call's start (settings.CALL_START_HOOKS): does the assistant have documents?

Read once in the call-start database thread, so the live call knows whether to offer
`search_knowledge` without a query on the event loop.
"""

from __future__ import annotations

from typing import Any

from calls.hooks import CallStartHook, Claim

from .selectors import ready_document_count


class KnowledgeDocuments(CallStartHook):
    def extras(self, assistant: Any, claim: Claim | None) -> dict[str, Any]:
        if assistant is None or assistant.pk is None:
            return {}
        count = ready_document_count(assistant.pk)
        return {"knowledge_documents": count} if count else {}
