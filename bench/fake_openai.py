"""The fake OpenAI Realtime server of `calls.fake_realtime`, made fit for thousands of frames a second.

The benchmark needs the fake's behaviour (GA events, replies streamed faster than real time,
barge-in cancelling the reply, transcripts after the reply began) without its test-oriented
costs. `BenchSession` keeps that behaviour and changes only what happens per audio frame:

- a caller frame is read for its tag (bench.frames) instead of being stored and voice-detected:
  the tag's LOUD flag stands in for the fake's RMS voice detector (same turn logic);
- every reply delta gets a tag carrying the time it was sent, and is not kept;
- connections are served by `LeanConnection` (`bench.wire` framing on a plain asyncio transport)
  instead of the `websockets` asyncio server, and a caller frame that changes no turn is handled
  right where it is read, without a task hop: the fake must stay far cheaper than the bridges it
  measures, on a core it shares with the load generator.

Run as `python -m bench.fake_openai --port P`: it prints `READY <port>` and then answers
commands on stdin, one per line: `stats <window start> <window end>` prints one JSON line
(what arrived, what was sent, per call), `quit` stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import copy
import json
import os
import sys
import time
from array import array
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedOK
from websockets.http11 import Request

from bench import wire
from bench.frames import LOUD, read_tag, tag_b64
from bench.stats import Histogram
from calls.testing.fake_openai import STREAM_EVENTS, FakeRealtimeServer, FakeSession, _error_body

APPEND = "input_audio_buffer.append"
DELTA = "response.output_audio.delta"


class _Discard(bytearray):
    """A bytearray that stays empty: the fake's copy of sent audio is not kept in a benchmark."""

    def __iadd__(self, other: Any) -> _Discard:
        return self


class _DiscardingAudio(dict):
    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, _Discard())


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


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


class BenchSession(FakeSession):
    """One fake OpenAI connection whose audio path costs little and measures itself."""

    def __init__(self, fake: BenchFake, ws: LeanConnection, model: str | None) -> None:
        super().__init__(fake, ws, model)
        self.bench = fake
        self.sent_audio = _DiscardingAudio()
        self.conn = fake.next_conn()
        self.t_handshake = fake.handshake_at.pop(id(ws), None)
        self.t_session_update: float | None = None
        self.t_first_delta: float | None = None
        self.caller: int | None = None
        self.windows: list[list[float]] = []  # [response.created sent, response.done sent]
        self._window_open: float | None = None
        self._speech_response: str | None = None  # the reply active when the caller cut in
        self._out_seq = 0
        self._fmt_key: Any = None
        self._bytes_per_ms = 48
        self._pausing: dict[int, asyncio.Future[None]] = {}

    def fast(self, raw: str) -> bool:
        """Handle a caller frame that changes no turn right away; False: take the ordered, async path."""
        if APPEND not in raw[:48]:
            return False
        audio = orjson.loads(raw).get("audio")
        tag = read_tag(audio) if isinstance(audio, str) else None
        if tag is None:
            return False
        flags, caller, seq, sent = tag
        loud = bool(flags & LOUD)
        ms = self._frame_ms(audio)
        if self._turns(loud, ms):
            return False
        self._record(time.monotonic(), caller, seq, sent, ms)
        self._buffer_ms += ms
        self._input_ms += ms
        if loud:
            self._silence_ms = 0.0
        elif self._in_speech:
            self._silence_ms += ms
        return True

    async def _on_message(self, raw: str | bytes) -> None:
        now = time.monotonic()
        self.bench.last_activity = now
        if isinstance(raw, str) and APPEND in raw[:48]:
            audio = orjson.loads(raw).get("audio")
            tag = read_tag(audio) if isinstance(audio, str) else None
            if tag is not None:
                flags, caller, seq, sent = tag
                ms = self._frame_ms(audio)
                self._record(now, caller, seq, sent, ms)
                await self._detect_voice(bool(flags & LOUD), ms)
                return
        elif self.t_session_update is None and isinstance(raw, str) and '"session.update"' in raw[:48]:
            self.t_session_update = now
        await super()._on_message(raw)

    def _frame_ms(self, audio: str) -> float:
        if self._fmt_key is not self.state["audio"]["input"]["format"]:
            self._fmt_key = self.state["audio"]["input"]["format"]
            self._bytes_per_ms = self.input_format.bytes_per_ms
        n = len(audio)
        return (n // 4 * 3 - (audio[-1] == "=") - (audio[-2] == "=")) / self._bytes_per_ms

    def _record(self, now: float, caller: int, seq: int, sent: float, ms: float) -> None:
        bench = self.bench
        bench.last_activity = now
        bench.in_sent.append(sent)
        bench.in_lat.append((now - sent) * 1000)
        self.caller = caller
        record = bench.callers.get(caller)
        if record is None:
            record = bench.callers[caller] = _CallIn(self.conn, ms / 1000)
        record.add(seq)
        self.input_bytes += int(ms * self._bytes_per_ms)

    def _silence_needed(self, td: dict[str, Any]) -> float:
        return (td.get("silence_duration_ms") or 500) if td["type"] == "server_vad" else 500

    def _turns(self, loud: bool, ms: float) -> bool:
        """Whether this frame starts or ends the caller's speech (needs the async path)."""
        td = self.state["audio"]["input"]["turn_detection"]
        if not td:
            return False
        if loud:
            return not self._in_speech
        return self._in_speech and self._silence_ms + ms >= self._silence_needed(td)

    async def _detect_voice(self, loud: bool, ms: float) -> None:
        """The fake's server-VAD turn logic, fed by the frame's LOUD flag instead of its RMS."""
        self._buffer_ms += ms
        self._input_ms += ms
        td = self.state["audio"]["input"]["turn_detection"]
        if not td:
            return
        if loud:
            self._silence_ms = 0.0
            if not self._in_speech:
                self._in_speech = True
                self._buffer_ms = min(self._buffer_ms, (td.get("prefix_padding_ms") or 0) + ms)
                await self._speech_started(td, round(self._input_ms - ms))
        elif self._in_speech:
            self._silence_ms += ms
            if self._silence_ms >= self._silence_needed(td):
                self._in_speech = False
                self._silence_ms = 0.0
                await self._speech_stopped(td, round(self._input_ms))

    async def send_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """FakeSession.send_event with orjson, and streamed text deltas not kept in `sent`."""
        kind = event.get("type")
        if kind == DELTA:
            return await self._send_delta(event)
        if kind == "input_audio_buffer.speech_started" and self.active_response is not None:
            self._speech_response = self.active_response.id
        sent = {"event_id": self.fake._new_id("event"), **event}
        text = orjson.dumps(sent).decode()
        async with self._send_lock:
            await self.ws.send(text)
            if kind not in STREAM_EVENTS:
                self._sent.add(sent)
        now = time.monotonic()
        if kind == "response.created":
            self._window_open = now
        elif kind == "response.done" and self._window_open is not None:
            self.windows.append([self._window_open, now])
            self._window_open = None
        return sent

    async def _pause(self, resp: Any, until: float) -> None:
        """FakeSession._pause without a task per pause: a timer, woken early by _cancel_active."""
        delay = until - time.monotonic()
        if delay <= 0 or resp.stop.is_set():
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(delay, _wake, waiter)
        self._pausing[id(resp)] = waiter
        try:
            await waiter
        finally:
            timer.cancel()
            self._pausing.pop(id(resp), None)

    async def _cancel_active(self, reason: str) -> None:
        resp = self.active_response
        if resp is not None:
            _wake(self._pausing.get(id(resp)))  # it resumes after the cancel reason is set below
        await super()._cancel_active(reason)

    async def _send_delta(self, event: dict[str, Any]) -> dict[str, Any]:
        event = {"event_id": self.fake._new_id("event"), **event}
        after_speech = event.get("response_id") == self._speech_response
        async with self._send_lock:
            seq = self._out_seq
            self._out_seq += 1
            now = time.monotonic()
            event["delta"] = tag_b64(0, self.conn, seq, now) + event["delta"][24:]
            await self.ws.send(orjson.dumps(event).decode())
        self.bench.out_sent.append((self.conn, seq, now, after_speech))
        if self.t_first_delta is None:
            self.t_first_delta = now
        self.bench.last_activity = now
        return event


class LeanConnection(asyncio.Protocol):
    """One connection to the fake: what FakeSession uses of a websockets ServerConnection
    (`request`, `send`, `close`, `transport`, `close_code`, `close_reason`), framed by bench.wire.

    Messages are handled in order by one task per connection; a caller frame that arrives while
    that task is idle, and changes no turn, is handled at once instead (BenchSession.fast).
    """

    def __init__(self, fake: BenchFake) -> None:
        self.fake = fake
        self.transport: asyncio.Transport | None = None
        self.request: Request | None = None
        self.session: BenchSession | None = None
        self.reader = wire.FrameReader(self._on_control)
        self._head: bytearray | None = bytearray()  # the HTTP request until the handshake is done
        self._close_sent = False
        self._backlog: collections.deque[str] = collections.deque()
        self._wake = asyncio.Event()
        self._busy = True  # until the session exists and has said session.created
        self._runner: asyncio.Task | None = None

    @property
    def close_code(self) -> int | None:
        return self.reader.close_code or (1006 if self.transport is None or self.transport.is_closing() else None)

    @property
    def close_reason(self) -> str:
        return self.reader.close_reason

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.fake.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = bytes(self._head[:end]), bytes(self._head[end + 4 :])
            self._head = None
            self._handshake(head)
        for text in self.reader.feed(data):
            self._on_text(text.decode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.fake.connections.discard(self)
        if self._runner is not None:
            self._runner.cancel()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _on_control(self, opcode: int, payload: bytes) -> None:
        if opcode == wire.CLOSE:
            if not self._close_sent:
                self._close_sent = True
                self._write(wire.frame(wire.CLOSE, payload, mask=False))
            if self.transport is not None:
                self.transport.close()
        else:
            self._write(wire.frame(opcode, payload, mask=False))

    def _handshake(self, head: bytes) -> None:
        self.fake.handshake_at[id(self)] = time.monotonic()
        first, headers = wire.parse_head(head)
        parts = first.split()
        path = parts[1] if len(parts) > 1 else "/"
        self.request = Request(path, Headers(headers))
        status = self.fake._handshake_status(self.request)
        key = headers.get("sec-websocket-key")
        if status == 101 and key:
            self._write(wire.server_response(key))
            self._runner = asyncio.ensure_future(self._run())
        else:
            self._write(wire.http_error(status if status != 101 else 400, json.dumps(_error_body(status))))
            self.transport.close()

    def _on_text(self, text: str) -> None:
        session = self.session
        if not self._busy and not self._backlog and session is not None and session.fast(text):
            return
        self._backlog.append(text)
        self._wake.set()

    async def _run(self) -> None:
        fake = self.fake
        model = (parse_qs(urlsplit(self.request.path).query).get("model") or [None])[0]
        session = self.session = fake.session_class(fake, self, model)  # type: ignore[arg-type]
        fake.sessions.append(session)
        try:
            if model not in fake.models:
                await session.send_error("model_not_found", f"The model '{model}' does not exist.", "model")
                await self.close(1008, "invalid_request_error.model_not_found")
                return
            await session.send_event({"type": "session.created", "session": copy.deepcopy(session.state)})
            while True:
                self._busy = True
                while self._backlog:
                    await session._on_message(self._backlog.popleft())
                self._busy = False
                self._wake.clear()
                await self._wake.wait()
        except ConnectionClosedOK:
            pass
        finally:
            session._finish()

    async def send(self, text: str) -> None:
        if self._close_sent or self.transport is None or self.transport.is_closing():
            raise ConnectionClosedOK(None, None)
        self.transport.write(wire.frame(wire.TEXT, text.encode(), mask=False))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self._close_sent:
            self._close_sent = True
            self._write(wire.frame(wire.CLOSE, wire.close_payload(code, reason), mask=False))


class BenchFake(FakeRealtimeServer):
    """FakeRealtimeServer with BenchSession connections on LeanConnection, and the benchmark's records."""

    session_class = BenchSession

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.validate = False
        self.handshake_at: dict[int, float] = {}
        self.in_sent = array("d")
        self.in_lat = array("d")
        self.callers: dict[int, _CallIn] = {}
        self.out_sent: list[tuple[int, int, float, bool]] = []
        self.last_activity = time.monotonic()
        self.connections: set[LeanConnection] = set()
        self._conns = 0
        self._lean: asyncio.Server | None = None

    def next_conn(self) -> int:
        self._conns += 1
        return self._conns

    async def start(self) -> BenchFake:
        loop = asyncio.get_running_loop()
        self._lean = await loop.create_server(lambda: LeanConnection(self), self.host, self.port)
        self.port = self._lean.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for session in self.sessions:
            for task in list(session._tasks):
                task.cancel()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self._lean is not None:
            self._lean.close()
            self._lean = None

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
        for sent, lat in zip(self.in_sent, self.in_lat, strict=True):
            if start <= sent < end:
                hist.add(lat)
        out: dict[int, list[list[int]]] = {}
        for conn, seq, sent, after_speech in self.out_sent:
            if start <= sent < end:
                out.setdefault(conn, []).append([seq, int(after_speech)])
        by_conn = {s.conn: s for s in self.sessions if isinstance(s, BenchSession)}
        callers = {}
        for caller, rec in self.callers.items():
            session = by_conn.get(rec.conn)
            callers[caller] = {
                "conn": rec.conn,
                "frame_s": rec.frame_s,
                "received": base64.b64encode(bytes(rec.bits)).decode("ascii"),
                "max_seq": rec.max_seq,
                "reordered": rec.reordered,
                "dups": rec.dups,
                "windows": session.windows if session is not None else [],
            }
        errors: dict[str, int] = {}
        responses = {"completed": 0, "cancelled": 0, "other": 0}
        for s in self.sessions:
            for err in s.errors:
                code = str(err.get("code"))
                errors[code] = errors.get(code, 0) + 1
            for r in s.responses:
                key = r.get("status") if r.get("status") in responses else "other"
                responses[key] += 1
        cpu = os.times()
        return {
            "in_latency": hist.to_json(),
            "out_sent": {str(conn): seqs for conn, seqs in out.items()},
            "callers": {str(k): v for k, v in callers.items()},
            "sessions": [
                {
                    "conn": s.conn,
                    "caller": s.caller,
                    "t_handshake": s.t_handshake,
                    "t_session_update": s.t_session_update,
                    "t_first_delta": s.t_first_delta,
                    "closed": s.closed.is_set(),
                }
                for s in self.sessions
                if isinstance(s, BenchSession)
            ],
            "errors": errors,
            "internal_errors": [repr(e) for s in self.sessions for e in s.internal_errors][:10],
            "responses": responses,
            "truncations": sum(len(s.truncations) for s in self.sessions),
            "cpu_s": cpu.user + cpu.system,
        }


async def serve(options: argparse.Namespace) -> None:
    fake = BenchFake(
        api_key=None,
        host="127.0.0.1",
        port=options.port,
        answer_ms=options.answer_ms,
        chunk_ms=options.chunk_ms,
        chunk_interval_ms=options.chunk_interval_ms,
        transcription_delay_ms=options.transcription_delay_ms,
    )
    await fake.start()
    print(f"READY {fake.port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode().split():
            if line[0] == "stats":
                await fake.quiet()
                print(json.dumps(fake.stats(float(line[1]), float(line[2]))), flush=True)
            elif line[0] == "quit":
                break
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_openai", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--answer-ms", type=float, default=2500, help="audio length of each reply")
    parser.add_argument("--chunk-ms", type=float, default=100, help="audio per delta")
    parser.add_argument("--chunk-interval-ms", type=float, default=20, help="time between deltas (5x real time)")
    parser.add_argument("--transcription-delay-ms", type=float, default=150)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (bench/requirements.txt)")
    options = parser.parse_args(argv)
    if options.uvloop:
        import uvloop

        uvloop.run(serve(options))
    else:
        asyncio.run(serve(options))


if __name__ == "__main__":
    main()
