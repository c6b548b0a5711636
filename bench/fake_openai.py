"""The benchmark's OpenAI: the fake of `calls.testing.fake_openai` under its load knobs, measuring.

The benchmark needs the fake's behaviour (GA events, replies streamed faster than real time,
barge-in cancelling the reply, transcripts after the reply began) at a cost far below the
servers it measures, on a core it shares with the load generator. The fake's load knobs give
that (`--load`: lean connections, no schema check of well-formed events, no copies of audio, no
record of appends and deltas), and its public hooks let this module measure through it:

- `voice_detector`: a caller frame's tag (bench.frames) says whether the caller speaks in it, so
  the fake's turn logic runs without decoding and measuring the audio;
- `on_audio`: each caller frame's tag gives its one-way latency and its place in its stream;
- `on_send`: each reply delta gets a tag carrying the time it is sent; response windows and the
  first delta's time are noted.

Run as `python -m bench.fake_openai --port P` (it takes the fake's command-line options, with
the load knobs on): it prints `READY <port>` and then answers commands on stdin, one per line:
`stats <window start> <window end>` prints one JSON line (what arrived, what was sent, per
call), `quit` stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import sys
import time
from array import array
from typing import Any

from assistants.audio_formats import AudioFormat
from bench.frames import LOUD, b64_nbytes, read_tag, tag_b64
from bench.stats import GcPauses, Histogram, per_second
from calls.testing.fake_openai import (
    EnergyVoiceDetector,
    FakeRealtimeServer,
    FakeSession,
    add_arguments,
    server_from_options,
)

DELTA = "response.output_audio.delta"


class _CallIn:
    """What arrived of one simulated caller's frames."""

    __slots__ = ("bits", "conn", "dups", "frame_s", "max_seq", "reordered")

    def __init__(self, conn: int, frame_s: float) -> None:
        self.conn = conn
        self.frame_s = frame_s
        self.bits = bytearray()
        self.max_seq = -1
        self.reordered = 0
        self.dups = 0

    def add(self, seq: int) -> None:
        byte, bit = divmod(seq, 8)
        if byte >= len(self.bits):
            self.bits.extend(bytes(byte - len(self.bits) + 64))
        if self.bits[byte] & (1 << bit):
            self.dups += 1
            return
        self.bits[byte] |= 1 << bit
        if seq < self.max_seq:
            self.reordered += 1
        else:
            self.max_seq = seq


class _Conn:
    """The benchmark's record of one connection to the fake."""

    __slots__ = ("caller", "conn", "out_seq", "speech_response", "t_first_delta", "window_open", "windows")

    def __init__(self, conn: int) -> None:
        self.conn = conn
        self.caller: int | None = None
        self.windows: list[list[float]] = []  # [response.created sent, response.done sent]
        self.window_open: float | None = None
        self.speech_response: str | None = None  # the reply active when the caller cut in
        self.out_seq = 0
        self.t_first_delta: float | None = None


class TaggedVoice:
    """A voice detector that reads the LOUD flag of a frame's tag; untagged audio is measured."""

    def __init__(self, session: FakeSession, recorder: BenchRecorder) -> None:
        self._energy = EnergyVoiceDetector(session)
        self._recorder = recorder

    def hear(self, audio: str, nbytes: int, fmt: AudioFormat) -> Any:
        recorder = self._recorder
        # on_audio has just read this frame's tag
        tag = recorder.last_tag if audio is recorder.last_audio else read_tag(audio)
        if tag is None:
            return self._energy.hear(audio, nbytes, fmt)
        return ((bool(tag[0] & LOUD), fmt.ms(nbytes)),)

    def reset(self) -> None:
        self._energy.reset()


class BenchRecorder:
    """The benchmark's records of a FakeRealtimeServer's traffic, fed by the fake's hooks."""

    def __init__(self, fake: FakeRealtimeServer) -> None:
        self.fake = fake
        fake.voice_detector = lambda session: TaggedVoice(session, self)
        fake.on_audio = self.on_audio
        fake.on_send = self.on_send
        self.conns: dict[FakeSession, _Conn] = {}
        self.in_sent = array("d")
        self.in_lat = array("d")
        self.callers: dict[int, _CallIn] = {}
        self.out_sent: list[tuple[int, int, float, bool]] = []
        self.last_activity = time.monotonic()
        self.last_audio: str | None = None
        self.last_tag: tuple[int, int, int, float] | None = None
        self.gc_pauses = GcPauses()

    def _conn(self, session: FakeSession) -> _Conn:
        rec = self.conns.get(session)
        if rec is None:
            rec = self.conns[session] = _Conn(len(self.conns) + 1)
        return rec

    def on_audio(self, session: FakeSession, audio: str) -> None:
        now = time.monotonic()
        self.last_activity = now
        tag = self.last_tag = read_tag(audio)
        self.last_audio = audio
        if tag is None:
            return
        _, caller, seq, sent = tag
        self.in_sent.append(sent)
        self.in_lat.append((now - sent) * 1000)
        rec = self._conn(session)
        rec.caller = caller
        record = self.callers.get(caller)
        if record is None:
            record = self.callers[caller] = _CallIn(rec.conn, session.input_format.ms(b64_nbytes(audio)) / 1000)
        record.add(seq)

    def on_send(self, session: FakeSession, event: dict[str, Any]) -> None:
        now = time.monotonic()
        self.last_activity = now
        rec = self._conn(session)
        kind = event["type"]
        if kind == DELTA:
            seq = rec.out_seq
            rec.out_seq += 1
            event["delta"] = tag_b64(0, rec.conn, seq, now) + event["delta"][24:]
            self.out_sent.append((rec.conn, seq, now, event.get("response_id") == rec.speech_response))
            if rec.t_first_delta is None:
                rec.t_first_delta = now
        elif kind == "input_audio_buffer.speech_started":
            if session.active_response is not None:
                rec.speech_response = session.active_response.id
        elif kind == "response.created":
            rec.window_open = now
        elif kind == "response.done" and rec.window_open is not None:
            rec.windows.append([rec.window_open, now])
            rec.window_open = None

    async def quiet(self, idle_s: float = 0.3, limit_s: float = 5.0) -> None:
        """Return once no frame has come or gone for `idle_s` (in-flight frames have landed)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            wait = self.last_activity + idle_s - time.monotonic()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def stats(self, start: float, end: float) -> dict[str, Any]:
        """Everything the analysis needs from this side, for frames sent within [start, end)."""
        hist = Histogram()
        series = array("d")
        for sent, lat in zip(self.in_sent, self.in_lat, strict=True):
            if start <= sent < end:
                hist.add(lat)
                series.append(sent)
                series.append(lat)
        out: dict[int, list[list[int]]] = {}
        for conn, seq, sent, after_speech in self.out_sent:
            if start <= sent < end:
                out.setdefault(conn, []).append([seq, int(after_speech)])
        by_conn = {rec.conn: rec for rec in self.conns.values()}
        callers = {}
        for caller, rec in self.callers.items():
            conn = by_conn.get(rec.conn)
            callers[caller] = {
                "conn": rec.conn,
                "frame_s": rec.frame_s,
                "received": base64.b64encode(bytes(rec.bits)).decode("ascii"),
                "max_seq": rec.max_seq,
                "reordered": rec.reordered,
                "dups": rec.dups,
                "windows": conn.windows if conn is not None else [],
            }
        sessions = self.fake.sessions
        errors: dict[str, int] = {}
        responses = {"completed": 0, "cancelled": 0, "other": 0}
        for s in sessions:
            for err in s.errors:
                code = str(err.get("code"))
                errors[code] = errors.get(code, 0) + 1
            for r in s.responses:
                key = r.get("status") if r.get("status") in responses else "other"
                responses[key] += 1
        cpu = os.times()
        return {
            "in_latency": hist.to_json(),
            "in_per_second": per_second(series, start),
            "gc_pauses": self.gc_pauses.within(start, end),
            "out_sent": {str(conn): seqs for conn, seqs in out.items()},
            "callers": {str(k): v for k, v in callers.items()},
            "sessions": [self._session_stats(s) for s in sessions],
            "errors": errors,
            "internal_errors": [repr(e) for s in sessions for e in s.internal_errors][:10],
            "responses": responses,
            "truncations": sum(len(s.truncations) for s in sessions),
            "cpu_s": cpu.user + cpu.system,
        }

    def _session_stats(self, session: FakeSession) -> dict[str, Any]:
        rec = self._conn(session)
        update = next((t for t, e in session.received if e.get("type") == "session.update"), None)
        return {
            "conn": rec.conn,
            "caller": rec.caller,
            "t_handshake": session.handshake.t if session.handshake is not None else None,
            "t_session_update": update,
            "t_first_delta": rec.t_first_delta,
            "closed": session.closed.is_set(),
        }


async def serve(options: dict[str, Any]) -> None:
    fake = server_from_options(options)
    recorder = BenchRecorder(fake)
    await fake.start()
    print(f"READY {fake.port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode().split():
            if line[0] == "gc":  # the orchestrator: no collection here while the load generator measures
                if line[1] == "off":
                    gc.collect()
                    gc.disable()
                else:
                    gc.enable()
            elif line[0] == "stats":
                gc.enable()
                await recorder.quiet()
                print(json.dumps(recorder.stats(float(line[1]), float(line[2]))), flush=True)
            elif line[0] == "quit":
                break
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_openai", description=__doc__.splitlines()[0])
    add_arguments(parser)
    # The benchmark's replies: 2.5 s of audio in 100 ms deltas every 20 ms (5x real time); any key.
    parser.set_defaults(port=0, answer_ms=2500, quiet=True, load=True)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (bench/requirements.txt)")
    options = vars(parser.parse_args(argv))
    if options["uvloop"]:
        import uvloop

        uvloop.run(serve(options))
    else:
        asyncio.run(serve(options))


if __name__ == "__main__":
    main()
