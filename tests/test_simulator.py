"""The 46elks call simulator against tiny scripted servers (no Django, no daphne)."""

from __future__ import annotations

import array
import asyncio
import base64
import contextlib
import json
import math
import socket
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import pytest
from websockets import ConnectionClosed
from websockets.asyncio.server import ServerConnection, serve

from assistants.audio_formats import FORMATS, AudioFormat
from calls.live.audio import decode, encode, rms
from calls.testing.elks_simulator import CallSimulator, HandshakeError, WavError

PCM = FORMATS["pcm_24000"]
ULAW = FORMATS["ulaw"]


class Peer:
    """The server side of one call as a script sees it: control messages queued, caller audio kept."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.loop = asyncio.get_running_loop()
        self.audio: list[tuple[float, bytes]] = []  # (arrival time, bytes)
        self.control: asyncio.Queue[dict | None] = asyncio.Queue()
        self._audio_added = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                msg = json.loads(message)
                if msg.get("t") == "audio":
                    self.audio.append((self.loop.time(), base64.b64decode(msg["data"])))
                    self._audio_added.set()
                else:
                    await self.control.put(msg)
        except ConnectionClosed:
            pass
        finally:
            await self.control.put(None)

    @property
    def audio_bytes(self) -> bytes:
        return b"".join(data for _, data in self.audio)

    async def expect(self, t: str, within: float = 5) -> dict:
        """The next control message, which must be of type `t`."""
        msg = await asyncio.wait_for(self.control.get(), within)
        assert msg is not None and msg.get("t") == t, f"expected {t!r}, got {msg!r}"
        return msg

    async def wait_audio_bytes(self, nbytes: int, within: float = 5) -> None:
        """Wait until at least `nbytes` of caller audio have arrived."""
        async with asyncio.timeout(within):
            while len(self.audio_bytes) < nbytes:
                self._audio_added.clear()
                await self._audio_added.wait()

    async def send(self, **msg: object) -> None:
        await self.ws.send(json.dumps(msg))

    async def send_audio(self, data: bytes) -> None:
        await self.send(t="audio", data=base64.b64encode(data).decode())


@dataclass
class Server:
    url: str = ""
    peers: list[Peer] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


@contextlib.asynccontextmanager
async def scripted(script: Callable[[Peer], Awaitable[None]], **serve_kwargs: object) -> AsyncIterator[Server]:
    """Serve `script` on a free port; fails the test if the script raised."""
    server = Server()

    async def handler(ws: ServerConnection) -> None:
        peer = Peer(ws)
        server.peers.append(peer)
        try:
            await script(peer)
            await asyncio.wait_for(peer.reader, 5)  # the simulator closes after its bye
        except Exception as exc:  # reported by the assert below
            server.errors.append(exc)

    async with serve(handler, "127.0.0.1", 0, **serve_kwargs) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        server.url = f"ws://127.0.0.1:{port}/ws/elks/secret/"
        yield server
    assert not server.errors, server.errors


def tone(fmt: AudioFormat, ms: float, freq: float = 440, amplitude: int = 8000) -> bytes:
    """A sine tone in the wire format."""
    n = int(fmt.sample_rate * ms / 1000)
    wave_ = (int(amplitude * math.sin(2 * math.pi * freq * i / fmt.sample_rate)) for i in range(n))
    return encode(array.array("h", wave_), fmt)


def ramp(nbytes: int) -> bytes:
    """Bytes that differ along their length, so a played prefix can be compared exactly."""
    return bytes(i % 251 for i in range(nbytes))


def levels(samples: array.array, rate: int, block_ms: int = 10) -> list[float]:
    """RMS per block, to see where there is sound."""
    n = rate * block_ms // 1000
    return [rms(samples[i : i + n]) for i in range(0, len(samples) - n + 1, n)]


def sim_for(url: str, **kwargs: object) -> CallSimulator:
    return CallSimulator(url, to="+46766861234", from_="+46701234567", **kwargs)


async def test_hello_first_no_origin_and_server_bye_answered_with_done() -> None:
    async def script(peer: Peer) -> None:
        hello = await peer.expect("hello")
        assert hello == {"t": "hello", "callid": "c0ffee", "from": "+46701234567", "to": "+46766861234"}
        await peer.send(t="bye")
        assert await peer.expect("bye") == {"t": "bye", "reason": "done", "message": "Call finished"}

    async with scripted(script) as server:
        sim = sim_for(server.url, callid="c0ffee")
        result = await sim.run()

    headers = server.peers[0].ws.request.headers
    assert "Origin" not in headers and "Authorization" not in headers and "Cookie" not in headers
    assert result.ended_by == "server" and result.bye_received == {"t": "bye"}
    assert result.cut_ms_at_bye == 0 and result.violations == [] and result.ok
    assert [e["t"] for _, e in result.events] == ["bye"]
    assert [m["t"] for _, m in result.sent] == ["hello", "bye"]
    assert (await sim.done) is result


async def test_caller_audio_waits_for_listening_and_is_paced_in_real_time() -> None:
    async def script(peer: Peer) -> None:
        await peer.expect("hello")
        assert peer.audio == []  # 46elks sends nothing before listening
        await peer.send(t="listening", format="pcm_24000")
        await peer.wait_audio_bytes(1000 * PCM.bytes_per_ms)
        await peer.send(t="bye")
        await peer.expect("bye")

    async with scripted(script) as server:
        result = await sim_for(server.url, frame_ms=(20, 7, 33)).run()

    frames = server.peers[0].audio
    sizes = [len(data) for _, data in frames]
    assert sizes[:4] == [20 * 48, 7 * 48, 33 * 48, 20 * 48]  # any frame size, cycled
    # Frame k starts at sent_ms[k] of the stream and must leave at start + sent_ms[k]: no drift.
    start = frames[0][0]
    position = 0.0
    lateness = []
    for arrived, data in frames:
        lateness.append(arrived - start - position)
        position += PCM.ms(len(data)) / 1000
    # A busy machine may hold one frame back; drift would show in every late frame.
    assert max(abs(x) for x in lateness) < 0.1, lateness
    assert sorted(abs(x) for x in lateness[-10:])[5] < 0.03, lateness
    assert position >= 1.0 and frames[-1][0] - start >= 0.95
    assert bytes(result.sent_audio).startswith(server.peers[0].audio_bytes)
    assert result.listening_format == "pcm_24000" and result.violations == []


async def test_script_speech_then_silence_forever_in_ulaw() -> None:
    async def script(peer: Peer) -> None:
        await peer.expect("hello")
        await peer.send(t="listening", format="ulaw")
        await peer.wait_audio_bytes(900 * ULAW.bytes_per_ms)
        await peer.send(t="bye")
        await peer.expect("bye")

    async with scripted(script) as server:
        sim = sim_for(server.url, caller_audio=[("silence", 200), ("speech", 300), ("silence", 100)])
        result = await sim.run()

    heard = levels(decode(server.peers[0].audio_bytes[: 900 * 8], ULAW), 8000)
    assert all(x < 50 for x in heard[:20])  # 0-200 ms silence
    assert all(x > 2000 for x in heard[20:50])  # 200-500 ms speech
    assert all(x < 50 for x in heard[50:90])  # script over: the line keeps sending silence
    start = server.peers[0].audio[0][0]
    assert len(result.speech_started_at) == 1
    assert result.speech_started_at[0] - start == pytest.approx(0.2, abs=0.03)


async def test_playback_buffer_answers_sync_when_everything_has_played() -> None:
    audio = ramp(2000 * PCM.bytes_per_ms)

    async def script(peer: Peer) -> None:
        await peer.expect("hello")
        await peer.send(t="sending", format="pcm_24000")
        for i in range(0, len(audio), 30_000):  # arbitrary sizes, all at once
            await peer.send_audio(audio[i : i + 30_000])
        sent_at = peer.loop.time()
        await peer.send(t="sync")
        await peer.expect("sync")
        assert peer.loop.time() - sent_at == pytest.approx(2.0, abs=0.06)
        await peer.send(t="bye")
        await peer.expect("bye")

    async with scripted(script) as server:
        sim = sim_for(server.url)
        task = asyncio.create_task(sim.run())
        first = await sim.wait_first_audio(timeout=2)
        assert 0 <= sim.played_ms() < 100
        result = await task

    sync = result.syncs[0]
    assert sync.answered_at - sync.requested_at == pytest.approx(2.0, abs=0.03)
    assert sync.answered_at - first == pytest.approx(2.0, abs=0.03)
    assert not sync.answered_early_by_interrupt
    assert result.played_audio == audio and result.played_ms == pytest.approx(2000)
    assert result.cut_ms_at_bye < 20 and result.violations == []


async def test_interrupt_cuts_playback_and_audio_is_ignored_until_a_new_sending() -> None:
    first, ignored, second = ramp(2000 * 48), tone(PCM, 100), tone(PCM, 200, freq=300)
    interrupt_now = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.expect("hello")
        await peer.send(t="sending", format="pcm_24000")
        await peer.send_audio(first)
        await interrupt_now.wait()
        await peer.send(t="interrupt")
        await peer.send_audio(ignored)  # no new sending yet: 46elks drops it
        await peer.send(t="sync")  # buffer is empty: answered at once
        await peer.expect("sync", within=0.2)
        await peer.send(t="sending", format="pcm_24000")
        await peer.send_audio(second)
        await peer.send(t="sync")
        await peer.expect("sync")
        await peer.send(t="bye")
        await peer.expect("bye")

    async with scripted(script) as server:
        sim = sim_for(server.url)
        task = asyncio.create_task(sim.run())
        assert await sim.wait_played_ms(500, timeout=3) >= 500
        interrupt_now.set()
        await sim.wait_for("interrupt", timeout=1)
        assert sim.segment_played_ms() == 0 and sim.buffered_ms() == 0
        result = await task

    cut = result.interrupts[0]
    assert 500 <= cut.segment_played_ms < 560
    assert cut.segment_played_bytes == pytest.approx(cut.segment_played_ms * 48)
    assert cut.segment_played_bytes % 2 == 0
    assert cut.discarded_bytes == len(first) - cut.segment_played_bytes
    assert result.played_audio == first[: cut.segment_played_bytes] + second
    assert [s.played_ms for s in result.segments] == [cut.segment_played_ms, 200]
    assert result.segments[0].ended_by == "interrupt" and result.segments[1].ended_by == "bye"
    assert result.ignored_audio_bytes == len(ignored) and result.ignored_audio_chunks == 1
    assert len(result.violations) == 1 and "after interrupt" in result.violations[0]
    assert result.syncs[1].answered_at - result.syncs[1].requested_at == pytest.approx(0.2, abs=0.08)
    assert result.discarded_ms == pytest.approx(2000 - cut.segment_played_ms)


async def test_audio_before_the_first_sending_is_ignored() -> None:
    played = tone(PCM, 100)

    async def script(peer: Peer) -> None:
        await peer.expect("hello")
        await peer.send_audio(tone(PCM, 50))
        await peer.send(t="sending", format="pcm_24000")
        await peer.send_audio(played)
        await peer.send(t="sync")
        await peer.expect("sync")
        await peer.send(t="bye")
        await peer.expect("bye")

    async with scripted(script) as server:
        result = await sim_for(server.url).run()

    assert result.ignored_audio_bytes == 50 * 48 and result.played_audio == played
    assert len(result.violations) == 1 and "before the first sending" in result.violations[0]
    assert result.audio_chunks[0][1] == 50 * 48 and len(result.audio_chunks) == 2


async def test_caller_hangs_up_after_seconds() -> None:
    async def script(peer: Peer) -> None:
        await peer.expect("hello")
        await peer.send(t="listening", format="ulaw")
        bye = await peer.expect("bye", within=3)
        assert bye == {"t": "bye", "reason": "hangup", "message": "the caller hung up"}
        assert await peer.control.get() is None  # and the socket closes

    async with scripted(script) as server:
        result = await sim_for(server.url, seconds=0.5).run()

    assert result.ended_by == "caller" and result.violations == []
    assert result.bye_sent_at - result.hello_sent_at == pytest.approx(0.5, abs=0.03)
    assert len(server.peers[0].audio_bytes) == pytest.approx(500 * ULAW.bytes_per_ms, abs=200)


async def test_server_closing_without_bye_is_a_violation() -> None:
    async def script(peer: Peer) -> None:
        await peer.expect("hello")
        await peer.ws.close()

    async with scripted(script) as server:
        result = await sim_for(server.url).run()

    assert result.ended_by == "server_closed" and result.bye_sent is None
    assert result.violations == ["socket closed without bye (close code 1000)"]


async def test_malformed_and_late_messages_are_violations() -> None:
    async def script(peer: Peer) -> None:
        await peer.expect("hello")
        await peer.ws.send("not json")
        await peer.ws.send(b"\x00\x01")
        await peer.send(t="hangup")
        await peer.send(type="close")
        await peer.send(t="listening", format="g722")
        await peer.send(t="sending", format="mp4")
        await peer.send(t="audio", data="***")
        await peer.send(t="bye")
        await peer.send(t="sync")  # after bye: 46elks is gone
        await peer.expect("bye")

    async with scripted(script) as server:
        result = await sim_for(server.url).run()

    problems = "\n".join(result.violations)
    for expected in (
        "invalid JSON",
        "binary frame",
        "unknown message type 'hangup'",
        "'type' instead of 't'",
        "'g722' is valid for 46elks but not supported",
        "invalid format 'mp4'",
        "invalid base64",
        "'sync' received after the server's bye",
    ):
        assert expected in problems
    assert len(result.violations) == 8 and result.ended_by == "server"


async def test_speak_injects_speech_live_and_hang_up_ends_the_call() -> None:
    async def script(peer: Peer) -> None:
        await peer.expect("hello")
        await peer.send(t="listening", format="pcm_24000")
        await peer.expect("bye")

    async with scripted(script) as server:
        sim = sim_for(server.url, jitter=True)
        task = asyncio.create_task(sim.run())
        await sim.wait_for("listening")
        sim.speak(300)
        started = await sim.wait_speech_started()
        await sim.wait_speech_started()  # already there: returns at once
        with pytest.raises(TimeoutError):
            await sim.wait_speech_started(count=2, timeout=0.05)
        await server.peers[0].wait_audio_bytes(600 * 48)
        await sim.hang_up()
        result = await task

    blocks = levels(decode(server.peers[0].audio_bytes, PCM), 24000)
    loud = [i for i, x in enumerate(blocks) if x > 2000]
    assert len(loud) == 30 and loud == list(range(loud[0], loud[0] + 30))  # exactly 300 ms, contiguous
    assert result.speech_started_at == [started] and result.ended_by == "caller"


async def test_wav_in_and_heard_wav_out(tmp_path) -> None:
    src = tmp_path / "in.wav"
    with wave.open(str(src), "wb") as w:  # stereo 16 kHz: tone left, silence right, 400 ms
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        left = array.array("h", (int(10000 * math.sin(2 * math.pi * 500 * i / 16000)) for i in range(6400)))
        frames = array.array("h", bytes(4 * len(left)))
        frames[0::2] = left
        w.writeframes(encode(frames, PCM))
    greeting = tone(ULAW, 300, freq=600)

    async def script(peer: Peer) -> None:
        await peer.expect("hello")
        await peer.send(t="listening", format="pcm_24000")
        await peer.send(t="sending", format="ulaw")
        await peer.send_audio(greeting)
        await peer.wait_audio_bytes(600 * PCM.bytes_per_ms)
        await peer.send(t="sync")
        await peer.expect("sync")
        await peer.send(t="bye")
        await peer.expect("bye")

    async with scripted(script) as server:
        result = await sim_for(server.url, caller_audio=src).run()

    caller = levels(decode(server.peers[0].audio_bytes, PCM), 24000)
    assert all(x > 3000 for x in caller[1:39]) and all(x < 50 for x in caller[41:60])
    assert result.played_audio == greeting

    out = tmp_path / "heard.wav"
    result.write_heard_wav(out)
    with wave.open(str(out), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        heard = decode(w.readframes(w.getnframes()), PCM)
    assert len(heard) / 8000 == pytest.approx(result.duration, abs=0.01)
    offset = round((result.played[0].start - result.hello_sent_at) * 100)  # in 10 ms blocks
    blocks = levels(heard, 8000)
    assert all(x > 3000 for x in blocks[offset + 1 : offset + 29])
    assert all(x == 0 for x in blocks[: max(0, offset - 1)] + blocks[offset + 31 :])


async def test_wav_must_exist_and_be_16_bit(tmp_path) -> None:
    with pytest.raises(WavError, match="not found"):
        sim_for("ws://127.0.0.1:1/", caller_audio=tmp_path / "missing.wav")
    eight_bit = tmp_path / "8bit.wav"
    with wave.open(str(eight_bit), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes(80))
    with pytest.raises(WavError, match="8-bit"):
        sim_for("ws://127.0.0.1:1/", caller_audio=eight_bit)


async def test_refused_handshake_and_unreachable_server_are_clear_errors() -> None:
    def forbid(connection, request):
        return connection.respond(HTTPStatus.FORBIDDEN, "no\n")

    async def never(peer: Peer) -> None:  # pragma: no cover - the handshake fails first
        raise AssertionError("handler reached")

    async with scripted(never, process_request=forbid) as server:
        sim = sim_for(server.url)
        with pytest.raises(HandshakeError, match="HTTP 403"):
            await sim.run()
        assert (await sim.done).error.startswith("server refused the WebSocket handshake with HTTP 403")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    with pytest.raises(HandshakeError, match="connection refused"):
        await sim_for(f"ws://127.0.0.1:{free_port}/ws/elks/x/").run()
    with pytest.raises(HandshakeError, match="bad URL"):
        await sim_for("http://127.0.0.1/ws/").run()
