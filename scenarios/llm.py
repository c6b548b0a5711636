"""The text model the simulated caller and the judge talk through: one call of OpenAI's Responses API.

`structured_response` has the same shape as the analysis app's client is meant to have
(model, instructions, input, schema) -> (dict, usage), so the two can become one.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings


class TextModelError(Exception):
    """The text model could not be reached or did not answer as asked; the message says which."""


def structured_response(
    model: str, instructions: str, input: str, schema: dict[str, Any], *, name: str = "answer"
) -> tuple[dict[str, Any], dict[str, int]]:
    """Ask `model` for a JSON object that follows `schema` (strict structured output); returns it and the usage."""
    import openai

    client = openai.OpenAI(
        api_key=settings.OPENAI_API_KEY or "missing",
        base_url=settings.OPENAI_BASE_URL or None,
        timeout=settings.SCENARIO_TEXT_TIMEOUT,
        max_retries=1,
    )
    try:
        response = client.responses.create(
            model=model,
            instructions=instructions,
            input=input,
            text={"format": {"type": "json_schema", "name": name, "schema": schema, "strict": True}},
        )
    except openai.OpenAIError as exc:
        raise TextModelError(f"The text model ({model}) failed: {type(exc).__name__}: {exc}") from None
    try:
        data = json.loads(response.output_text)
    except ValueError:
        raise TextModelError(f"The text model ({model}) did not answer with JSON.") from None
    usage = getattr(response, "usage", None)
    return data, {
        "input_tokens": int(getattr(usage, "input_tokens", 0) or 0),
        "output_tokens": int(getattr(usage, "output_tokens", 0) or 0),
    }
