"""The scenarios app's part in a new call (settings.CALL_START_HOOKS): a voice-mode scenario's call is a test.

The simulated caller of scenarios.voice dials the assistant's number with a call id starting with
`scenario-`; this hook claims such calls for the dialled number's assistant and marks them `is_test`,
so no dashboard count or export counts them as customers' calls. Only someone holding the 46elks
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
        return to_number if call_id.startswith(CALL_ID_PREFIX) else None

    def claim(self, candidates: Any) -> Claim | None:
        return Claim(hook=self, assistant=assistant_for_number(candidates), direction=CallDirection.INBOUND)

    def attach(self, claim: Claim, call: Any) -> None:
        Call.objects.filter(pk=call.pk).update(is_test=True)
        call.is_test = True
