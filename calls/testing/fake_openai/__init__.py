"""A fake OpenAI Realtime GA server that speaks the real protocol over a real WebSocket.

Tests and demos of the phone bridge need an OpenAI that (1) rejects what the real service rejects,
because a silently accepted beta-shaped `session.update` is the classic failure of this API, and
(2) behaves like it in time: audio arrives faster than real time, barge-in cancels the reply, the
caller's transcript arrives after the reply has started. The benchmark needs the same fake at
thousands of frames a second: load knobs and hooks on the server give it that (see `server`).

    protocol     GA event validation (the `openai` package's models), default session, error bodies
    session      FakeSession, one connection: records, sending, receiving, session.update, items
    input_audio  the caller's audio: voice activity, commit, transcription
    responses    the assistant's replies: streamed audio and text, function calls, usage
    voice        voice detectors (how the fake hears) and tone() (what it says)
    events       the event log with its wait API, and the console log
    server       FakeRealtimeServer: handshake, auth and failure knobs, load knobs, hooks; the CLI
    lean         the lean connection for load (`lean=True`)

No Django here: tests import it without settings, and `python -m calls.testing.fake_openai` runs it
standalone (as does `manage.py fake_openai`).
"""

from calls.testing.fake_openai.events import EventLog, SessionClosedError
from calls.testing.fake_openai.input_audio import DEFAULT_CALLER_TRANSCRIPT
from calls.testing.fake_openai.protocol import (
    AUDIO_EVENTS,
    BETA_ERROR,
    CLIENT_EVENT_TYPES,
    MODELS,
    SERVER_EVENT_TYPES,
    STREAM_EVENTS,
    ClientEventError,
    default_session,
    error_event,
    validate_client_dict,
    validate_client_event,
    validate_server_event,
)
from calls.testing.fake_openai.responses import DEFAULT_REPLY, StreamedResponse
from calls.testing.fake_openai.server import (
    FakeRealtimeServer,
    HandshakeRecord,
    add_arguments,
    main,
    run_forever,
    server_from_options,
)
from calls.testing.fake_openai.session import FakeSession
from calls.testing.fake_openai.voice import VAD_WINDOW_MS, EnergyVoiceDetector, VoiceDetector, tone

__all__ = [
    "AUDIO_EVENTS",
    "BETA_ERROR",
    "CLIENT_EVENT_TYPES",
    "DEFAULT_CALLER_TRANSCRIPT",
    "DEFAULT_REPLY",
    "MODELS",
    "SERVER_EVENT_TYPES",
    "STREAM_EVENTS",
    "VAD_WINDOW_MS",
    "ClientEventError",
    "EnergyVoiceDetector",
    "EventLog",
    "FakeRealtimeServer",
    "FakeSession",
    "HandshakeRecord",
    "SessionClosedError",
    "StreamedResponse",
    "VoiceDetector",
    "add_arguments",
    "default_session",
    "error_event",
    "main",
    "run_forever",
    "server_from_options",
    "tone",
    "validate_client_dict",
    "validate_client_event",
    "validate_server_event",
]
