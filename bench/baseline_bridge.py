#!/usr/bin/env python3
# The baseline of the benchmark: the bridge from 46elks' realtime-voice guide ("Example: bridge to
# OpenAI Realtime", ../shared/seeds/46elks-realtime-voice-guide.txt), kept as the guide has it except:
# - ported to the OpenAI Realtime GA protocol, since the beta one is switched off: no OpenAI-Beta
#   header, a GA session.update (session.type, nested audio formats, output_modalities),
#   response.output_audio.delta, and a current model (gpt-4o-realtime-preview is shut down);
# - the OpenAI URL (OPENAI_REALTIME_URL), the codec (BASELINE_CODEC: pcm_24000 or ulaw) and the
#   listening address (BASELINE_HOST) come from the environment, so the benchmark can point it at
#   the fake OpenAI on loopback;
# - python-dotenv and the unused `requests` import are left out (the benchmark sets the environment).
# Its behaviour is the guide's, bugs included: caller audio is dropped while a reply is being
# generated (is_speaking), there is no barge-in, and the OpenAI socket outlives a caller's hang-up.
# The guide's layout is kept too, hence no linting or formatting here:
# ruff: noqa
# fmt: off

import asyncio, json, logging, os, sys
import websockets
from websockets.asyncio.client import connect as ws_connect

OPENAI_API_KEY = os.environ["OPENAI_API_KEY"]
OPENAI_URL     = os.environ.get("OPENAI_REALTIME_URL", "wss://api.openai.com/v1/realtime")
OPENAI_MODEL   = "gpt-realtime-2.1"
CODEC          = os.environ.get("BASELINE_CODEC", "pcm_24000")
OPENAI_FORMAT  = {"pcm_24000": {"type": "audio/pcm", "rate": 24000}, "ulaw": {"type": "audio/pcmu"}}[CODEC]
HOST           = os.environ.get("BASELINE_HOST", "0.0.0.0")

log = logging.getLogger(__name__)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

INSTRUCTIONS = "You are a helpful voice assistant. Keep answers short and clear."


async def handle_call(elks_ws):
    # 1. Receive hello from 46elks
    data = json.loads(await elks_ws.recv())
    if data.get("t") != "hello":
        log.error("Expected hello, got: %s", data)
        return

    call_id = data.get("callid", "?")
    caller  = data.get("from", "?")
    log.info("Call %s from %s", call_id, caller)

    # 2. Connect to OpenAI Realtime
    async with ws_connect(
        f"{OPENAI_URL}?model={OPENAI_MODEL}",
        additional_headers={
            "Authorization": f"Bearer {OPENAI_API_KEY}",
        },
    ) as openai_ws:

        # Configure session
        await openai_ws.send(json.dumps({
            "type": "session.update",
            "session": {
                "type": "realtime",
                "output_modalities": ["audio"],
                "instructions": INSTRUCTIONS,
                "audio": {
                    "input": {
                        "format": OPENAI_FORMAT,
                        "turn_detection": {
                            "type": "server_vad",
                            "threshold": 0.9,
                            "silence_duration_ms": 800,
                        },
                    },
                    "output": {"format": OPENAI_FORMAT, "voice": "shimmer"},
                },
            },
        }))

        # Send greeting
        await openai_ws.send(json.dumps({
            "type": "response.create",
            "response": {
                "output_modalities": ["audio"],
                "instructions": "Greet the caller briefly.",
            },
        }))

        # 3. Declare audio formats to 46elks
        await elks_ws.send(json.dumps({"t": "sending",   "format": CODEC}))
        await elks_ws.send(json.dumps({"t": "listening", "format": CODEC}))

        is_speaking = False

        # 4a. Caller audio -> OpenAI
        async def elks_to_openai():
            async for message in elks_ws:
                msg = json.loads(message)
                if msg.get("t") == "audio" and not is_speaking:
                    await openai_ws.send(json.dumps({
                        "type": "input_audio_buffer.append",
                        "audio": msg["data"],
                    }))
                elif msg.get("t") == "bye":
                    log.info("Call ended: %s", msg.get("reason"))
                    break

        # 4b. OpenAI audio -> caller
        async def openai_to_elks():
            nonlocal is_speaking
            async for message in openai_ws:
                msg = json.loads(message)
                t   = msg.get("type")
                if   t == "response.created":       is_speaking = True
                elif t == "response.done":           is_speaking = False
                elif t == "response.output_audio.delta":
                    await elks_ws.send(json.dumps({
                        "t": "audio", "data": msg["delta"],
                    }))

        await asyncio.gather(elks_to_openai(), openai_to_elks())


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8095
    log.info("Listening on port %d", port)
    async with websockets.serve(handle_call, HOST, port):
        await asyncio.Future()

asyncio.run(main())
