"""Scenarios as YAML, one file per assistant, so they can live in a repository: the same data as admin.

- id: book-table
  caller: {instructions: "Eva, 67, wants a table for four on Friday at seven", language: en, facts: ""}
  expect:
    tools_called: [{name: book_table, arguments: {guests: 4}}]
    ends_with: assistant_hangup
    max_turns: 8
    max_first_audio_ms: 1500
    never_say: ["card number"]
  judge: ["confirms date and time before ending"]
  tool_mocks: {book_table: {ok: true}}
  repeat: 3
  mode: text
"""

from __future__ import annotations

from typing import Any

import yaml
from django.db import transaction

from assistants.models import Assistant
from scenarios.models import Mode, Scenario


class ScenarioFileError(Exception):
    """The YAML cannot be imported; the message says where and why, for the person importing it."""


def scenario_as_dict(scenario: Scenario) -> dict[str, Any]:
    expect: dict[str, Any] = {}
    if scenario.tools_called:
        expect["tools_called"] = scenario.tools_called
    if scenario.ends_with:
        expect["ends_with"] = scenario.ends_with
    if scenario.max_turns:
        expect["max_turns"] = scenario.max_turns
    if scenario.max_first_audio_ms:
        expect["max_first_audio_ms"] = scenario.max_first_audio_ms
    if scenario.forbidden_phrases:
        expect["never_say"] = scenario.forbidden_phrases
    caller = {"instructions": scenario.caller_instructions, "language": scenario.caller_language}
    if scenario.facts:
        caller["facts"] = scenario.facts
    out: dict[str, Any] = {"id": scenario.slug, "caller": caller, "expect": expect}
    if scenario.judge:
        out["judge"] = scenario.judge
    if scenario.tool_mocks:
        out["tool_mocks"] = scenario.tool_mocks
    out["repeat"] = scenario.repeat
    out["mode"] = scenario.mode
    out["turn_limit"] = scenario.turn_limit
    return out


def export_yaml(assistant: Assistant) -> str:
    data = [scenario_as_dict(s) for s in assistant.scenarios.order_by("slug")]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScenarioFileError(f"{where} must be a list.")
    return value


def _fields(entry: Any, n: int) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ScenarioFileError(f"Scenario {n} is not a mapping (id, caller, expect, ...).")
    slug = str(entry.get("id") or "").strip()
    if not slug:
        raise ScenarioFileError(f"Scenario {n} has no id.")
    where = f"Scenario {slug!r}"
    caller = entry.get("caller") or {}
    expect = entry.get("expect") or {}
    if not isinstance(caller, dict) or not str(caller.get("instructions") or "").strip():
        raise ScenarioFileError(f"{where}: caller.instructions is missing.")
    if not isinstance(expect, dict):
        raise ScenarioFileError(f"{where}: expect must be a mapping.")
    tools = _list(expect.get("tools_called"), f"{where}: expect.tools_called")
    for tool in tools:
        if not isinstance(tool, dict) or not tool.get("name"):
            raise ScenarioFileError(f"{where}: each of expect.tools_called needs a name.")
    mode = entry.get("mode") or Mode.TEXT
    if mode not in Mode.values:
        raise ScenarioFileError(f"{where}: mode must be one of {', '.join(Mode.values)}.")
    mocks = entry.get("tool_mocks") or {}
    if not isinstance(mocks, dict):
        raise ScenarioFileError(f"{where}: tool_mocks must be a mapping of tool name to answer.")
    try:
        return {
            "slug": slug,
            "caller_instructions": str(caller["instructions"]).strip(),
            "caller_language": str(caller.get("language") or ""),
            "facts": str(caller.get("facts") or ""),
            "tools_called": tools,
            "ends_with": str(expect.get("ends_with") or ""),
            "max_turns": int(expect["max_turns"]) if expect.get("max_turns") else None,
            "max_first_audio_ms": int(expect["max_first_audio_ms"]) if expect.get("max_first_audio_ms") else None,
            "forbidden_phrases": [str(p) for p in _list(expect.get("never_say"), f"{where}: expect.never_say")],
            "judge": [str(c) for c in _list(entry.get("judge"), f"{where}: judge")],
            "tool_mocks": mocks,
            "repeat": max(1, int(entry.get("repeat") or 1)),
            "mode": mode,
            "turn_limit": max(1, int(entry.get("turn_limit") or 12)),
        }
    except (TypeError, ValueError) as exc:
        raise ScenarioFileError(f"{where}: a number is not a number ({exc}).") from None


@transaction.atomic
def scenarios_import(*, assistant: Assistant, text: str) -> tuple[int, int]:
    """Create or update the assistant's scenarios from YAML (matched by id); (created, updated)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioFileError(f"The file is not valid YAML: {exc}") from None
    if isinstance(data, dict) and "scenarios" in data:
        data = data["scenarios"]
    entries = [_fields(e, n) for n, e in enumerate(_list(data, "The file"), 1)]
    created = updated = 0
    for fields in entries:
        _, made = Scenario.objects.update_or_create(assistant=assistant, slug=fields.pop("slug"), defaults=fields)
        created += made
        updated += not made
    return created, updated
