"""Answering-machine detection for campaign calls (a CALL_OBSERVERS factory), from the transcript.

The assistant greets as usual: nothing waits for the verdict, so a person hears no delay. The
callee's first utterance decides: a voicemail phrase ("leave a message after the tone", "lämna
ett meddelande") or a long uninterrupted monologue is a machine; anything else a person. A
machine gets the campaign's policy: hang up, or (its greeting over, i.e. after the beep and the
silence that ends the utterance) the configured message, then hang up. The verdict is written to
the contact off the event loop (run_db), never inline.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING

from calls.db import run_db
from calls.live.observers import CallObserver
from calls.live.types import Outcome

from .models import AnsweredBy, VoicemailPolicy

if TYPE_CHECKING:
    from calls.live.types import CallHandle, TranscriptLine

log = logging.getLogger(__name__)

MACHINE_PHRASES = re.compile(
    r"leave (a|your) message|after the (tone|beep)|not available|can't take your call|cannot take your call"
    r"|voicemail|voice mail|lämna (ett )?meddelande|efter (tonen|pipet|signalen)|inte anträffbar"
    r"|röstbrevlåda|kan inte svara just nu|talsvar",
    re.IGNORECASE,
)
# A first utterance this long, spoken without a pause, is a recorded greeting rather than "Hello?".
MONOLOGUE_WORDS = 18


def classify(first_utterance: str) -> str:
    """machine or human, from what the callee said first."""
    text = first_utterance.strip()
    if MACHINE_PHRASES.search(text) or len(text.split()) >= MONOLOGUE_WORDS:
        return AnsweredBy.MACHINE
    return AnsweredBy.HUMAN


def say_exactly(message: str) -> str:
    return (
        "An answering machine took the call. Leave this message by saying exactly the following, word for "
        f"word, and nothing else:\n{message}"
    )


class AnsweringMachineDetector(CallObserver):
    def __init__(self, campaign: dict) -> None:
        self.contact_pk = campaign.get("contact")
        self.policy = campaign.get("voicemail_policy") or VoicemailPolicy.HANG_UP
        self.message = (campaign.get("voicemail_message") or "").strip()
        self.verdict = ""
        self._tasks: set[asyncio.Task] = set()  # the verdict's writes
        self._saying: asyncio.Task | None = None

    def _record(self, answered_by: str) -> None:
        from . import services

        task = asyncio.get_running_loop().create_task(
            run_db(services.contact_answered_by)(contact_pk=self.contact_pk, answered_by=answered_by)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def transcript(self, session: CallHandle, line: TranscriptLine) -> None:
        if self.verdict or line.role != "caller":
            return
        self.verdict = classify(line.text)
        self._record(self.verdict)
        if self.verdict != AnsweredBy.MACHINE:
            return
        log.info("call %s: an answering machine answered (%s)", session.hello.callid, self.policy)
        if self.policy == VoicemailPolicy.LEAVE_MESSAGE and self.message:
            outcome = Outcome("completed", "assistant_hangup", "An answering machine answered: the message was left.")
            # Not awaited in `ended`: it ends the call itself (and waits for that).
            self._saying = asyncio.get_running_loop().create_task(
                session.say_goodbye_and_end(outcome, instructions=say_exactly(self.message))
            )
        else:
            session.request_hang_up(
                Outcome("completed", "assistant_hangup", "An answering machine answered: the campaign hangs up.")
            )

    async def ended(self, session: CallHandle, outcome: Outcome) -> None:
        if not self.verdict:
            self.verdict = AnsweredBy.UNKNOWN  # the callee never spoke
            self._record(self.verdict)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def answering_machine_detector(session: CallHandle) -> AnsweringMachineDetector | None:
    """The CALL_OBSERVERS factory: only a campaign's calls are watched."""
    campaign = (session.config.extra or {}).get("campaign") if session.config else None
    if not campaign or not campaign.get("contact"):
        return None
    return AnsweringMachineDetector(campaign)
