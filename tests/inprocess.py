"""Serve the project's WebSocket routes from the test process, over a real socket.

Faults inside the server (a database that is down or slow) can only be injected in the process
that runs the consumer; this runs the real consumer and session behind a real socket, so the
simulator and the fake OpenAI talk to it exactly as they talk to daphne.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


async def _bridge(app, ws: ServerConnection) -> None:
    incoming: asyncio.Queue[dict] = asyncio.Queue()
    request = ws.request
    path = request.path.split("?")[0]
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.raw_items()],
        "client": ws.remote_address[:2],
        "server": ws.local_address[:2],
        "subprotocols": [],
    }
    await incoming.put({"type": "websocket.connect"})

    async def receive() -> dict:
        return await incoming.get()

    async def send(message: dict) -> None:
        kind = message["type"]
        try:
            if kind == "websocket.send":
                await ws.send(message["text"] if message.get("text") is not None else message["bytes"])
            elif kind == "websocket.close":
                await ws.close(message.get("code", 1000))
        except ConnectionClosed:
            pass

    app_task = asyncio.ensure_future(app(scope, receive, send))
    try:
        async for frame in ws:
            key = "text" if isinstance(frame, str) else "bytes"
            await incoming.put({"type": "websocket.receive", key: frame})
    except ConnectionClosed:
        pass
    await incoming.put({"type": "websocket.disconnect", "code": ws.close_code or 1006})
    try:
        await asyncio.wait_for(asyncio.shield(app_task), 30)
    except TimeoutError:
        app_task.cancel()


@asynccontextmanager
async def serve_app(app) -> AsyncIterator[str]:
    """Yields the base ws:// URL of a server running `app` (an ASGI WebSocket application)."""
    async with serve(lambda ws: _bridge(app, ws), "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"
