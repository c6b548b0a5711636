"""The tools app's part in recording a new call (settings.CALL_START_HOOKS).

It recognises the answered leg of an outbound call we placed (tools.pairing), whose assistant
then answers, and hands every call the webhook tools it may use (tools.selectors.call_extras).
"""

from __future__ import annotations

from typing import Any

from calls.hooks import CallStartHook, Claim
from calls.models import CallDirection

from .pairing import outbound_call_attach, outbound_call_candidates, outbound_call_claim
from .selectors import call_extras


class OutboundAndTools(CallStartHook):
    def candidates(self, *, call_id: str, from_number: str, to_number: str) -> list[tuple[int, str]]:
        return outbound_call_candidates(call_id=call_id, from_number=from_number, to_number=to_number)

    def claim(self, candidates: list[tuple[int, str]]) -> Claim | None:
        outbound = outbound_call_claim(candidates=candidates)
        if outbound is None:
            return None
        return Claim(self, outbound.assistant, CallDirection.OUTBOUND, outbound)

    def attach(self, claim: Claim, call: Any) -> None:
        outbound_call_attach(claim.target, call)

    def extras(self, assistant: Any, claim: Claim | None) -> dict[str, Any]:
        return call_extras(assistant, claim.target if claim is not None and claim.hook is self else None)
