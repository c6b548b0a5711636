"""The OpenAI client on its own, against a server that speaks the protocol over a real socket."""

from __future__ import annotations

import asyncio
import base64

from websockets.asyncio.server import serve

from calls.live.realtime import RealtimeClient

AUDIO = base64.b64encode(bytes(960)).decode().encode()  # 20 ms of 24 kHz PCM


async def test_caller_audio_is_dropped_not_queued_when_openai_stops_reading():
    """A session that stops reading must not grow our memory; the session is told each frame it lost."""
    stalled = asyncio.Event()

    async def never_reads(ws) -> None:
        stalled.set()
        await ws.wait_closed()  # never recv(): past one queued message, websockets stops reading the socket

    async with serve(never_reads, "127.0.0.1", 0, max_queue=1, close_timeout=0.1) as server:
        port = server.sockets[0].getsockname()[1]
        client = await RealtimeClient.connect(
            f"ws://127.0.0.1:{port}/v1/realtime", api_key="sk-unit", model="m", on_event=lambda e: None
        )
        await stalled.wait()
        accepted = 0
        while client.append_audio(AUDIO):  # the kernel's buffers fill, then ours up to its bound
            accepted += 1
            assert accepted < 100_000, "audio kept being queued"
        assert client._transport.get_write_buffer_size() < 3 * 1024 * 1024
        client._transport.abort()
