"""A call's transcript: OpenAI's conversation items in order, as the caller actually heard them.

Called by the session for OpenAI's item and transcript events, and by barge-in when the caller
cuts the assistant off. Lines go to the store (which writes them off the audio path) and to the
observers; a line is rewritten in place when it changes (a cut, a late final text).
"""

from __future__ import annotations

from .types import TranscriptLine


class CallTranscript:
    """The transcript of CallSession (see calls.live.session for the state it shares)."""

    def _on_item_seen(self, event: dict) -> None:
        item = event.get("item") or {}
        item_id = item.get("id") or event.get("item_id")
        if item_id and item_id not in self._positions:
            self._positions[item_id] = self._next_position
            self._next_position += 1
            if item.get("role") == "assistant":
                self._assistant_text.setdefault(item_id, [])

    def _on_committed(self, event: dict) -> None:
        self._on_item_seen({"item_id": event.get("item_id")})

    def _on_transcript_delta(self, event: dict) -> None:
        item_id = event.get("item_id")
        if item_id:
            self._assistant_text.setdefault(item_id, []).append(str(event.get("delta") or ""))

    def _on_transcript_done(self, event: dict) -> None:
        item_id = event.get("item_id")
        if item_id:
            self._assistant_final[item_id] = str(event.get("transcript") or "")
            self._write_assistant(item_id)

    def _on_caller_transcript(self, event: dict) -> None:
        self._notify("transcription_done", event)
        item_id = event.get("item_id") or ""
        text = str(event.get("transcript") or "").strip()
        self._write_line(item_id, "caller", text or "(nothing recognisable)")

    def _on_caller_transcript_failed(self, event: dict) -> None:
        error = (event.get("error") or {}).get("message") or "transcription failed"
        self._write_line(event.get("item_id") or "", "caller", f"(could not be transcribed: {error})")

    def _offset_ms(self) -> int:
        return int((self._now() - self.started_at) * 1000)

    def _write_line(self, item_id: str, role: str, text: str, interrupted: bool = False) -> None:
        if self.call_pk is None:
            return
        position = self._positions.get(item_id)
        if position is None:
            position = self._positions[item_id or f"_{self._next_position}"] = self._next_position
            self._next_position += 1
        line = TranscriptLine(
            position, role, text, item_id=item_id, interrupted=interrupted, offset_ms=self._offset_ms()
        )
        self.store.transcript(self.call_pk, line)
        self._notify("transcript", line)

    def add_transcript(self, role: str, text: str) -> None:
        """A line that is not an OpenAI item (a tool call, a note), placed at this point of the call."""
        self._write_line("", role, text)

    def _write_assistant(self, item_id: str) -> None:
        """(Re)write an assistant line: the whole text, or the part the caller heard if cut off."""
        text = self._assistant_final.get(item_id)
        if text is None:
            text = "".join(self._assistant_text.get(item_id, ()))
        cut = self._interrupted.get(item_id)
        if cut is not None:
            text = heard_part(text, *cut)
        if text or cut is not None:
            self._write_line(item_id, "assistant", text, interrupted=cut is not None)


def heard_part(text: str, heard_ms: float, received_ms: float) -> str:
    """The words of `text` the caller heard before cutting in, by the share of audio played.

    The transcript and the audio of an item run in step, so the share of audio heard is a fair
    measure of the share of words; we cut at a word boundary and mark the cut with an ellipsis.
    """
    text = text.strip()
    if not text or received_ms <= 0:
        return ""
    share = max(0.0, min(1.0, heard_ms / received_ms))
    if share >= 0.999:
        return text
    cut = int(len(text) * share)
    head = text[:cut]
    if cut < len(text) and not text[cut].isspace() and " " in head:
        head = head.rsplit(" ", 1)[0]
    head = head.rstrip(" ,.;:")
    return f"{head}…" if head else "…"
