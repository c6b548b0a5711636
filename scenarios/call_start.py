"""The scenarios app's part in a new call (settings.CALL_START_HOOKS): a voice-mode scenario's call is a test.

The simulated caller of scenarios.voice dials the assistant's number with a call id starting with
`scenario-<scenario id>-`; this hook claims such calls for the dialled number's assistant and marks them `is_test`,
so no dashboard count or export counts them as customers' calls, and gives the call the scenario's mock
tool answers (`tool_mocks` in the call's extras, which tools' runner answers with). Only someone holding the 46elks
secret can open a call at all, and 46elks' own call ids never start so.
"""

from __future__ import annotations

from typing import Any

from assistants.selectors import assistant_for_number
from calls.hooks import CallStartHook, Claim
from calls.models import Call, CallDirection

CALL_ID_PREFIX = "scenario-"


class ScenarioCallStart(CallStartHook):
    def candidates(self, *, call_id: str, from_number: str, to_number: str) -> Any:
        if not call_id.startswith(CALL_ID_PREFIX):
            return None
        scenario = call_id[len(CALL_ID_PREFIX) :].split("-", 1)[0]
        return to_number, int(scenario) if scenario.isdigit() else None

    def claim(self, candidates: Any) -> Claim | None:
        to_number, scenario_pk = candidates
        assistant = assistant_for_number(to_number)
        return Claim(hook=self, assistant=assistant, direction=CallDirection.INBOUND, target=scenario_pk)

    def extras(self, assistant: Any, claim: Claim | None) -> dict[str, Any]:
        """The scenario's mock tool answers (tools' runner answers those tools with them)."""
        if claim is None or claim.hook is not self or claim.target is None:
            return {}
        from scenarios.models import Scenario

        mocks = Scenario.objects.filter(pk=claim.target, assistant=assistant).values_list("tool_mocks", flat=True)
        return {"tool_mocks": mocks.first() or {}}

    def attach(self, claim: Claim, call: Any) -> None:
        Call.objects.filter(pk=call.pk).update(is_test=True)
        call.is_test = True
