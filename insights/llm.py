"""One structured answer from a text model, through OpenAI's Responses API (structured outputs, strict).

Generic on purpose: call analysis uses it, and so may anything else that needs "read this, answer
in this JSON Schema" (e.g. a judge of test scenarios). The `openai` package does the HTTP, its
retries with backoff on 429, 5xx and timeouts, and reads `OPENAI_API_KEY` / `OPENAI_BASE_URL`.
"""

from __future__ import annotations

import json
from typing import Any

import openai
from django.conf import settings


class StructuredResponseError(Exception):
    """The model gave no usable answer; the message says why, in words for the admin page."""

    def __init__(self, reason: str, *, usage: dict[str, int] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.usage = usage or {}


def _usage(response: Any) -> dict[str, int]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return {}
    details = getattr(usage, "input_tokens_details", None)
    return {
        "input_tokens": int(getattr(usage, "input_tokens", 0) or 0),
        "cached_tokens": int(getattr(details, "cached_tokens", 0) or 0) if details else 0,
        "output_tokens": int(getattr(usage, "output_tokens", 0) or 0),
    }


def client(*, timeout: float | None = None, max_retries: int | None = None) -> openai.OpenAI:
    """A client with the project's limits; the base URL comes from OPENAI_BASE_URL (the SDK's own variable)."""
    return openai.OpenAI(
        api_key=settings.OPENAI_API_KEY or "missing-key",
        timeout=settings.ANALYSIS_TIMEOUT_SECONDS if timeout is None else timeout,
        max_retries=settings.ANALYSIS_MAX_RETRIES if max_retries is None else max_retries,
        base_url=settings.OPENAI_BASE_URL or None,
    )


def structured_response(
    model: str,
    instructions: str,
    input: str | list[dict[str, Any]],
    schema: dict[str, Any],
    *,
    name: str = "result",
    timeout: float | None = None,
    max_retries: int | None = None,
) -> tuple[dict[str, Any], dict[str, int]]:
    """The model's answer to `input` as a dict matching `schema` (strict), and the tokens it used.

    Raises StructuredResponseError with a plain reason when the API fails (after the SDK's
    retries), the model refuses, or the answer is not JSON matching the schema's top level.
    """
    try:
        response = client(timeout=timeout, max_retries=max_retries).responses.create(
            model=model,
            instructions=instructions,
            input=input,
            text={"format": {"type": "json_schema", "name": name, "schema": schema, "strict": True}},
            store=False,
        )
    except openai.APITimeoutError:
        raise StructuredResponseError("The model did not answer in time (timed out after retries).") from None
    except openai.APIConnectionError as exc:
        raise StructuredResponseError(f"Could not reach the model's API: {exc}") from None
    except openai.APIStatusError as exc:
        raise StructuredResponseError(f"The model's API answered {exc.status_code}: {_message(exc)}") from None
    usage = _usage(response)
    if getattr(response, "status", "completed") not in ("completed", None):
        detail = getattr(getattr(response, "incomplete_details", None), "reason", "") or response.status
        raise StructuredResponseError(f"The model's answer is incomplete ({detail}).", usage=usage)
    for item in getattr(response, "output", None) or []:
        for part in getattr(item, "content", None) or []:
            if getattr(part, "type", "") == "refusal":
                raise StructuredResponseError(f"The model refused: {part.refusal}", usage=usage)
    text = getattr(response, "output_text", "") or ""
    try:
        data = json.loads(text)
    except ValueError:
        raise StructuredResponseError(f"The model's answer is not JSON: {text[:200]!r}", usage=usage) from None
    if not isinstance(data, dict):
        raise StructuredResponseError("The model's answer is not a JSON object.", usage=usage)
    missing = [k for k in schema.get("required", []) if k not in data]
    if missing:
        raise StructuredResponseError(f"The model's answer lacks {', '.join(missing)}.", usage=usage)
    return data, usage


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    return str((error or {}).get("message") or exc.message)[:300]
