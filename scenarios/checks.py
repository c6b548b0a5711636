"""The hard checks of a scenario: pure functions from what happened in a conversation to pass/fail + reason.

Each check gives a `CheckResult`; an attempt passes when every check and every judge criterion does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Outcome:
    """What a conversation did, as the checks read it."""

    transcript: list[dict[str, str]] = field(default_factory=list)  # {"role": "caller"|"assistant", "text": ...}
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name": ..., "arguments": {...}}
    ended_with: str = ""  # assistant_hangup | caller_hangup | transfer:<number> | turn_limit | error
    turns: int = 0
    first_reply_ms: float | None = None


@dataclass
class CheckResult:
    name: str
    passed: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _arguments(call: dict[str, Any]) -> dict[str, Any]:
    args = call.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args or "{}")
        except ValueError:
            return {}
    return args if isinstance(args, dict) else {}


def _matches(wanted: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """The argument names whose values differ (strings compare without case or surrounding spaces)."""
    wrong = []
    for key, value in wanted.items():
        have = got.get(key)
        if isinstance(value, str) and isinstance(have, str):
            same = value.strip().casefold() == have.strip().casefold()
        else:
            same = value == have
        if not same:
            wrong.append(f"{key}={have!r} (wanted {value!r})")
    return wrong


def check_tools(expected: list[dict[str, Any]], calls: list[dict[str, Any]]) -> list[CheckResult]:
    results = []
    for want in expected:
        name = want.get("name", "")
        wanted_args = want.get("arguments") or {}
        same_name = [c for c in calls if c.get("name") == name]
        label = f"tool {name} called"
        if not same_name:
            called = ", ".join(sorted({c.get("name", "") for c in calls})) or "none"
            results.append(CheckResult(label, False, f"{name} was never called (called: {called})."))
            continue
        problems = [_matches(wanted_args, _arguments(c)) for c in same_name]
        if any(not p for p in problems):
            results.append(CheckResult(label, True, f"{name} was called with the expected arguments."))
        else:
            results.append(CheckResult(label, False, f"{name} was called with {'; '.join(problems[-1])}."))
    return results


def check_ending(expected: str, ended_with: str) -> CheckResult:
    expected = expected.strip()
    if expected.startswith("transfer:") and ended_with.startswith("transfer:"):
        want = expected.split(":", 1)[1].replace(" ", "")
        got = ended_with.split(":", 1)[1].replace(" ", "")
        ok = not want or want == got
    else:
        ok = expected == ended_with
    reason = f"The call ended with {ended_with or 'nothing'}" + ("." if ok else f", not {expected}.")
    return CheckResult("ends with", ok, reason)


def check_turns(max_turns: int, turns: int) -> CheckResult:
    ok = turns <= max_turns
    return CheckResult("turns", ok, f"{turns} turns ({'within' if ok else 'more than'} the limit of {max_turns}).")


def check_first_reply(max_ms: int, first_ms: float | None) -> CheckResult:
    if first_ms is None:
        return CheckResult("first answer", False, "The assistant never answered.")
    ok = first_ms <= max_ms
    return CheckResult("first answer", ok, f"First answer after {first_ms:.0f} ms (limit {max_ms} ms).")


def check_forbidden(phrases: list[str], transcript: list[dict[str, str]]) -> list[CheckResult]:
    said = [line["text"] for line in transcript if line.get("role") == "assistant"]
    results = []
    for phrase in phrases:
        hit = next((text for text in said if phrase.casefold() in text.casefold()), None)
        if hit is None:
            results.append(CheckResult(f"never says “{phrase}”", True, "Never said."))
        else:
            results.append(CheckResult(f"never says “{phrase}”", False, f"The assistant said: “{hit}”"))
    return results


def evaluate(scenario: Any, outcome: Outcome) -> list[CheckResult]:
    """Every hard check the scenario asks for, in a stable order."""
    results = check_tools(list(scenario.tools_called or []), outcome.tool_calls)
    if scenario.ends_with:
        results.append(check_ending(scenario.ends_with, outcome.ended_with))
    if scenario.max_turns:
        results.append(check_turns(scenario.max_turns, outcome.turns))
    if scenario.max_first_audio_ms:
        results.append(check_first_reply(scenario.max_first_audio_ms, outcome.first_reply_ms))
    results += check_forbidden(list(scenario.forbidden_phrases or []), outcome.transcript)
    return results
