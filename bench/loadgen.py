"""The load generator: N concurrent simulated 46elks calls against one bridge.

Each call speaks 46elks' realtime-voice protocol (hello; caller audio in real time once asked
with `listening`; playback that `interrupt` clears and `sync` checkpoints; bye) and a simple
conversation: the caller talks for about a second, waits for the answer to play out, pauses,
talks again, and every third answer cuts in shortly after it starts (a barge-in). Every caller
frame carries a tag (bench.frames) so the fake OpenAI can tell when it was sent; every reply
frame carries one from the fake, so this side can tell the same.

It is deliberately lean so that it is never the bottleneck: WebSocket frames are written and
read by `calls.testing.wire` on plain asyncio transports (no task or queue per message), and all
calls' frames are paced by one timer that visits the calls in ten phase groups.

`python -m bench.loadgen --url … --to … --calls N` prints marker lines on stdout (IDLE, WINDOW
<start> <end>, DONE) for the orchestrator (bench.run) and writes its results as JSON to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import random
import time
import uuid
from array import array
from typing import Any

import orjson
from websockets.uri import parse_uri

from assistants.audio_formats import FORMATS
from bench.frames import LOUD, MARKER, TAG, b64_nbytes, read_tag, rest_b64
from bench.stats import GcPauses, Histogram, per_second
from calls.testing import wire

PHASES = 10  # calls are spread over this many phase groups per frame period
AUDIO_PREFIX = b'{"t":"audio","data":"'
AUDIO_SUFFIX = b'"}'
BYE_HANGUP = b'{"t":"bye","reason":"hangup","message":"the caller hung up"}'
BYE_DONE = b'{"t":"bye","reason":"done","message":"Call finished"}'
SYNC = b'{"t":"sync"}'

# The caller's side of the conversation (seconds).
UTTERANCE_S = (0.8, 1.3)
PAUSE_AFTER_ANSWER_S = (0.5, 1.0)
ANSWER_WAIT_S = 3.0  # talk again if no answer came within this
BARGE_IN_EVERY = 3  # every third answer is cut into
BARGE_IN_AFTER_S = (0.15, 0.6)
BARGE_IN_S = 0.6
NEW_ANSWER_GAP_S = 0.25  # playback idle this long before audio = a new answer begins


class Caller(asyncio.Protocol):
    """One simulated 46elks call on one TCP connection."""

    def __init__(self, gen: LoadGen, idx: int) -> None:
        self.gen = gen
        self.idx = idx
        self.callid = f"bench-{gen.run_id}-{idx}"
        self.rng = random.Random(gen.seed * 100_003 + idx)
        self.reader = wire.FrameReader(self.on_control)
        self.head: bytearray | None = bytearray()  # the HTTP answer until the handshake is done
        self.accept = ""
        self.close_sent = False
        self.transport: asyncio.Transport | None = None
        self.opened = asyncio.get_running_loop().create_future()
        self.listening = asyncio.get_running_loop().create_future()
        self.first_audio = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.hanging_up = False
        # caller audio
        self.streaming = False
        self.seq = 0
        self.t0: float | None = None
        self.speak_from = 0.0
        self.speak_until = 0.0
        self.next_turn = 0.0
        self.pause = self.rng.uniform(*PAUSE_AFTER_ANSWER_S)
        # playback, as 46elks keeps it
        self.play_end = 0.0
        self.muted = False
        self.answers = 0
        self.pending_syncs: list[asyncio.TimerHandle] = []
        # records
        self.t_hello: float | None = None
        self.first_audio_sent: float | None = None
        self.first_audio_recv: float | None = None
        self.conns: set[int] = set()

    # -- transport -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        uri = parse_uri(self.gen.url)
        request, self.accept = wire.client_request(uri.host, uri.port, uri.resource_name)
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        if self.head is not None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            first, headers = wire.parse_head(bytes(self.head[:end]))
            data = bytes(self.head[end + 4 :])
            self.head = None
            self.on_handshake(first, headers)
        for text in self.reader.feed(data):
            self.on_text(text)

    def on_control(self, opcode: int, payload: bytes) -> None:
        """A ping to answer, or the server's close (answered, then the socket closes)."""
        if opcode == wire.CLOSE:
            if not self.hanging_up:
                self.gen.error("the server closed the socket during the call (no bye)")
                self.hanging_up = True
            if not self.close_sent:
                self.close_sent = True
                self.write(wire.frame(wire.CLOSE, payload, mask=True))
            if self.transport is not None:
                self.transport.close()
        else:
            self.write(wire.frame(opcode, payload, mask=True))

    def connection_lost(self, exc: Exception | None) -> None:
        self.streaming = False
        for handle in self.pending_syncs:
            handle.cancel()
        if not self.hanging_up:
            self.gen.error("connection closed by the server during the call")
        for fut in (self.opened, self.listening, self.first_audio):
            if not fut.done():
                fut.set_exception(ConnectionError("closed"))
                fut.exception()  # mark retrieved
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def send(self, text: bytes) -> None:
        if not self.close_sent:
            self.write(wire.frame(wire.TEXT, text, mask=True))

    def send_close(self) -> None:
        if not self.close_sent:
            self.close_sent = True
            self.write(wire.frame(wire.CLOSE, wire.close_payload(1000), mask=True))

    # -- 46elks protocol -----------------------------------------------------------------------

    def on_handshake(self, first: str, headers: dict[str, str]) -> None:
        if " 101 " not in first + " " or headers.get("sec-websocket-accept") != self.accept:
            self.gen.error(f"handshake refused: {first[:60]}")
            self.hanging_up = True
            if not self.opened.done():
                self.opened.set_exception(ConnectionError(first))
                self.opened.exception()
            if self.transport is not None:
                self.transport.close()
            return
        self.t_hello = time.monotonic()
        hello = {"t": "hello", "callid": self.callid, "from": "+46709999999", "to": self.gen.to}
        self.send(orjson.dumps(hello))
        if not self.opened.done():
            self.opened.set_result(None)

    def on_text(self, data: bytes) -> None:
        now = time.monotonic()
        try:
            msg = orjson.loads(data)
            t = msg["t"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.gen.count("messages that are not 46elks JSON")
            return
        if t == "audio":
            self.on_audio(now, msg.get("data"))
        elif t == "listening":
            if msg.get("format") != self.gen.fmt.name:
                self.gen.error(f"listening format {msg.get('format')!r}, not {self.gen.fmt.name!r}")
            if not self.listening.done():
                self.listening.set_result(now)
        elif t == "sending":
            self.muted = False
            self.gen.count("sending")
        elif t == "interrupt":
            self.muted = True
            self.play_end = now
            self.gen.count("interrupt")
            pending, self.pending_syncs = self.pending_syncs, []
            for handle in pending:  # the buffer is empty now: answer at once
                handle.cancel()
                self.send(SYNC)
                self.gen.count("sync answered")
        elif t == "sync":
            delay = max(0.0, self.play_end - now)
            self.pending_syncs.append(asyncio.get_running_loop().call_later(delay, self.answer_sync))
        elif t == "bye":
            self.gen.count("bye from the server")
            if not self.hanging_up:
                self.hanging_up = True
                self.streaming = False
                self.send(BYE_DONE)
                self.send_close()
        else:
            self.gen.count(f"unknown message {t!r}")

    def answer_sync(self) -> None:
        if self.pending_syncs:
            self.pending_syncs.pop(0)  # timers fire in the order they were asked for
        if not self.hanging_up and self.transport is not None and not self.transport.is_closing():
            self.send(SYNC)
            self.gen.count("sync answered")

    def on_audio(self, now: float, data: Any) -> None:
        if not isinstance(data, str):
            self.gen.error("audio without data")
            return
        tag = read_tag(data)
        if tag is None:
            self.gen.count("untagged audio frames")
            return
        _, conn, seq, sent = tag
        gen = self.gen
        gen.note_out(conn, seq, sent, now)
        self.conns.add(conn)
        if self.first_audio_recv is None:
            self.first_audio_recv = now
            self.first_audio_sent = sent
            if not self.first_audio.done():
                self.first_audio.set_result(now)
        if self.muted:
            gen.count("audio ignored after interrupt (before a new sending)")
            return
        new_answer = now > self.play_end + NEW_ANSWER_GAP_S
        self.play_end = max(now, self.play_end) + b64_nbytes(data) / gen.fmt.bytes_per_ms / 1000
        if new_answer:
            self.answers += 1
            if self.answers % BARGE_IN_EVERY == 0 and now >= self.speak_until and self.streaming:
                self.speak_from = now + self.rng.uniform(*BARGE_IN_AFTER_S)
                self.speak_until = self.speak_from + BARGE_IN_S
                self.next_turn = self.speak_until + ANSWER_WAIT_S
                gen.count("barge-ins")

    # -- caller audio --------------------------------------------------------------------------

    def start_streaming(self, first_due: float) -> None:
        self.streaming = True
        self.next_turn = first_due + 1.0  # let the greeting begin
        self.gen.phases[self.idx % PHASES].append(self)

    def send_frame(self, due: float) -> None:
        now = time.monotonic()
        if now >= self.speak_until and now >= self.next_turn and now >= self.play_end + self.pause:
            self.speak_from = now
            self.speak_until = now + self.rng.uniform(*UTTERANCE_S)
            self.next_turn = self.speak_until + ANSWER_WAIT_S
            self.pause = self.rng.uniform(*PAUSE_AFTER_ANSWER_S)
        loud = LOUD if self.speak_from <= now < self.speak_until else 0
        if self.seq == 0:
            self.t0 = due
        tag = base64.b64encode(TAG.pack(MARKER, loud, self.idx, self.seq, now))
        self.seq += 1
        self.send(AUDIO_PREFIX + tag + self.gen.rest + AUDIO_SUFFIX)

    async def hang_up(self, timeout: float = 5.0) -> None:
        """Say bye as 46elks does, close the socket, and wait for the server to let go."""
        self.streaming = False
        if self.transport is None:
            return
        if not self.hanging_up and not self.transport.is_closing():
            self.hanging_up = True
            self.send(BYE_HANGUP)
            self.send_close()
        self.hanging_up = True
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.gen.count("connections aborted after bye (server did not close)")
            self.transport.abort()


class LoadGen:
    """Runs the calls, paces their audio and keeps what the analysis needs."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.url = options.url
        self.to = options.to
        self.fmt = FORMATS[options.format]
        self.calls_wanted = options.calls
        self.seed = options.seed
        self.frame_s = options.frame_ms / 1000
        self.run_id = uuid.uuid4().hex[:8]
        nbytes = int(self.fmt.bytes_per_ms * options.frame_ms)
        self.rest = rest_b64(nbytes, 0xFF if self.fmt.bytes_per_sample == 1 else 0).encode()
        self.options = options
        self.phases: list[list[Caller]] = [[] for _ in range(PHASES)]
        self.calls: list[Caller] = []
        self.window = (float("inf"), float("inf"))
        self.out_latency = Histogram()
        self.out_received: dict[int, list[int]] = {}
        self.out_max_seq: dict[int, int] = {}
        self.out_reordered = 0
        self.out_frames = 0
        self.lag = Histogram()
        self.out_series = array("d")  # (sent, latency ms) pairs within the window, for the per-second plot
        self.lag_series = array("d")  # (due, pacing lag ms) pairs within the window
        self.gc_pauses = GcPauses()
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.pacing = True
        self._probe_ids = 100_000  # probe and warm-up calls get ids of their own (and callids)

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def note_out(self, conn: int, seq: int, sent: float, now: float) -> None:
        self.out_frames += 1
        self.out_received.setdefault(conn, []).append(seq)
        last = self.out_max_seq.get(conn, -1)
        if seq < last:
            self.out_reordered += 1
        else:
            self.out_max_seq[conn] = seq
        if self.window[0] <= sent < self.window[1]:
            ms = (now - sent) * 1000
            self.out_latency.add(ms)
            self.out_series.append(sent)
            self.out_series.append(ms)

    async def connect(self, idx: int) -> Caller | None:
        uri = parse_uri(self.url)
        loop = asyncio.get_running_loop()
        caller = Caller(self, idx)
        try:
            await loop.create_connection(lambda: caller, uri.host, uri.port)
            await asyncio.wait_for(caller.opened, 10)
        except (OSError, ConnectionError, TimeoutError) as exc:
            self.error(f"could not connect: {type(exc).__name__}")
            if caller.transport is not None:
                caller.transport.abort()
            return None
        return caller

    async def pace(self) -> None:
        """Send every streaming call's next frame on time; one timer for all calls."""
        tick = self.frame_s / PHASES
        start = time.monotonic()
        k = 0
        while self.pacing:
            due = start + k * tick
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.window[0] <= due < self.window[1]:
                ms = (time.monotonic() - due) * 1000
                self.lag.add(ms)
                self.lag_series.append(due)
                self.lag_series.append(ms)
            for caller in self.phases[k % PHASES]:
                if caller.streaming:
                    caller.send_frame(due)
            k += 1

    async def start_call(self, idx: int) -> Caller | None:
        caller = await self.connect(idx)
        if caller is None:
            return None
        try:
            await asyncio.wait_for(caller.listening, 10)
        except TimeoutError:
            self.error("no listening within 10 s of hello")
            await caller.hang_up(timeout=1.0)
            return None
        except ConnectionError:
            self.error("call refused or dropped before listening" if caller.hanging_up else "closed before listening")
            return None
        caller.start_streaming(time.monotonic())
        return caller

    async def probe(self, count: int) -> list[dict[str, Any]]:
        """Calls one after the other on an idle server: hello → greeting timings."""
        out = []
        for _ in range(count):
            self._probe_ids += 1
            caller = await self.connect(self._probe_ids)
            if caller is None:
                continue
            try:
                await asyncio.wait_for(caller.first_audio, 10)
            except (TimeoutError, ConnectionError):
                self.error("probe: no greeting audio within 10 s")
            out.append(
                {
                    "t_hello": caller.t_hello,
                    "first_audio_sent": caller.first_audio_sent,
                    "first_audio_recv": caller.first_audio_recv,
                }
            )
            await caller.hang_up()
        return out

    async def run(self) -> dict[str, Any]:
        o = self.options
        result: dict[str, Any] = {"format": self.fmt.name, "calls_wanted": self.calls_wanted}
        if o.probe:
            result["probes"] = await self.probe(o.probe)
        if o.warm_call:
            await self.probe(1)
        print(f"IDLE {time.monotonic()}", flush=True)
        if not self.calls_wanted:
            print("DONE", flush=True)
            return self._result(result)
        pacer = asyncio.ensure_future(self.pace())
        gap = o.ramp_s / max(1, self.calls_wanted)
        starts = []
        for idx in range(self.calls_wanted):
            starts.append(asyncio.ensure_future(self.start_call(idx)))
            await asyncio.sleep(gap)
        self.calls = [c for c in await asyncio.gather(*starts) if c is not None]
        # No garbage collection in this process while it measures: a pause here would delay
        # frames and be blamed on the server. (Pauses that still happen are recorded.)
        gc.collect()
        gc.disable()
        w0 = time.monotonic() + o.warmup_s
        self.window = (w0, w0 + o.duration_s)
        print(f"WINDOW {self.window[0]} {self.window[1]}", flush=True)
        await asyncio.sleep(self.window[1] + o.cooldown_s - time.monotonic())
        self.pacing = False
        gc.enable()
        await pacer
        await asyncio.gather(*(c.hang_up() for c in self.calls))
        print("DONE", flush=True)
        return self._result(result)

    def _result(self, result: dict[str, Any]) -> dict[str, Any]:
        result.update(
            calls_connected=len(self.calls),
            window=list(self.window) if self.window[0] != float("inf") else None,
            frame_s=self.frame_s,
            callers={str(c.idx): {"t0": c.t0, "sent": c.seq, "conns": sorted(c.conns)} for c in self.calls},
            out_latency=self.out_latency.to_json(),
            out_received={str(k): v for k, v in self.out_received.items()},
            out_reordered=self.out_reordered,
            out_frames=self.out_frames,
            pacing_lag=self.lag.summary(),
            out_per_second=per_second(self.out_series, self.window[0]) if self.out_series else [],
            pacing_per_second=per_second(self.lag_series, self.window[0]) if self.lag_series else [],
            gc_pauses=self.gc_pauses.within(*self.window),
            counts=self.counts,
            errors=self.errors,
        )
        return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the bridge's 46elks WebSocket URL")
    parser.add_argument("--to", default="+46700000101", help="the number called (picks the assistant)")
    parser.add_argument("--format", default="pcm_24000", choices=["pcm_24000", "ulaw"])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--ramp-s", type=float, default=2.0, help="calls start spread over this time")
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--duration-s", type=float, default=15.0, help="the measurement window")
    parser.add_argument("--cooldown-s", type=float, default=1.5, help="load kept after the window")
    parser.add_argument("--frame-ms", type=float, default=20.0, help="caller audio per frame")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--probe", type=int, default=0, help="first make this many calls one by one")
    parser.add_argument("--warm-call", action="store_true", help="make one call before the load")
    parser.add_argument("--out", required=True, help="write the results (JSON) here")
    parser.add_argument("--uvloop", action="store_true")
    options = parser.parse_args(argv)
    gen = LoadGen(options)
    if options.uvloop:
        import uvloop

        result = uvloop.run(gen.run())
    else:
        result = asyncio.run(gen.run())
    with open(options.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
