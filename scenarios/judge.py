"""The judge: a text model reads the transcript and answers each criterion with pass/fail and one line why."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from insights.llm import structured_response

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "criterion": {"type": "string"},
                    "passed": {"type": "boolean"},
                    "reason": {"type": "string"},
                },
                "required": ["criterion", "passed", "reason"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["results"],
    "additionalProperties": False,
}

JUDGE_INSTRUCTIONS = (
    "You review a phone call between a caller and an AI phone assistant. For each criterion, decide "
    "whether the assistant met it, judging only from the transcript. Answer every criterion, in the "
    "given order, with the criterion's text, passed true or false, and one short sentence saying why."
)


def transcript_text(transcript: list[dict[str, Any]]) -> str:
    return "\n".join(f"{line['role']}: {line['text']}" for line in transcript)


def judge(model: str, criteria: list[str], transcript: list[dict[str, Any]]) -> tuple[list[dict], dict]:
    """One result per criterion ({criterion, passed, reason}); a criterion the model skipped fails."""
    if not criteria:
        return [], {}
    prompt = "Criteria:\n" + "\n".join(f"{i}. {c}" for i, c in enumerate(criteria, 1))
    prompt += "\n\nTranscript:\n" + transcript_text(transcript)
    data, usage = structured_response(
        model, JUDGE_INSTRUCTIONS, prompt, JUDGE_SCHEMA, name="judgement", timeout=settings.SCENARIO_TEXT_TIMEOUT
    )
    answers = list(data.get("results") or [])
    results = []
    for i, criterion in enumerate(criteria):
        answer = answers[i] if i < len(answers) else None
        if not isinstance(answer, dict):
            results.append({"criterion": criterion, "passed": False, "reason": "The judge gave no answer."})
            continue
        results.append(
            {"criterion": criterion, "passed": bool(answer.get("passed")), "reason": str(answer.get("reason", ""))}
        )
    return results, usage
