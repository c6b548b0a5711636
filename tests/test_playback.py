"""The playback estimate and the heard-text estimate, on a clock we control."""

from assistants.realtime_config import AssistantConfig, echoed_formats_match, greeting, session_update
from calls.live.playback import Playback
from calls.live.transcript import heard_part

BPM = 48  # pcm_24000: 48 bytes per ms


def test_audio_sent_faster_than_real_time_queues_behind_itself():
    p = Playback(BPM)
    p.add("a", 48 * 1000, now=0.0)  # one second of audio sent at t=0
    p.add("a", 48 * 1000, now=0.1)  # another, sent 100 ms later: plays from t=1.0
    assert p.end == 2.0 and p.audible(1.9) and not p.audible(2.0)
    assert p.heard_ms("a", 1.5) == 1500


def test_cut_reports_what_was_heard_never_more_than_received():
    p = Playback(BPM)
    p.add("a", 48 * 800, now=0.0)
    p.add("b", 48 * 500, now=0.05)  # a second item queued behind the first
    cuts = p.cut(now=0.3)
    assert [(c.item_id, c.heard_ms) for c in cuts] == [("a", 300), ("b", 0)]
    assert not p.audible(0.3)


def test_a_fully_heard_item_needs_no_truncate():
    p = Playback(BPM)
    p.add("a", 48 * 200, now=0.0)
    assert p.cut(now=0.5) == []


def test_gap_in_the_stream_is_not_counted_as_heard():
    p = Playback(BPM)
    p.add("a", 48 * 100, now=0.0)  # plays 0.0-0.1
    p.add("a", 48 * 100, now=0.5)  # underrun: plays 0.5-0.6
    assert round(p.heard_ms("a", 0.55)) == 150


def test_sync_answer_corrects_an_estimate_running_late():
    p = Playback(BPM)
    p.add("a", 48 * 1000, now=0.0)
    p.played_out(now=0.9)  # 46elks says everything has played already
    assert not p.audible(0.9)


def test_heard_part_cuts_at_a_word():
    text = "One two three four five six seven eight"
    assert heard_part(text, 500, 1000) == "One two three four…"
    assert heard_part(text, 1000, 1000) == text
    assert heard_part(text, 0, 1000) == "…"


def test_session_update_is_ga_shaped_and_validates():
    from calls.testing.fake_openai import validate_client_dict

    cfg = AssistantConfig(
        id=1,
        name="x",
        instructions="Be brief.",
        audio_format="ulaw",
        allow_interruptions=False,
        turn_detection="semantic_vad",
        eagerness="low",
        language="sv",
        noise_reduction="off",
    )
    event = session_update(cfg, tools=[])
    validate_client_dict(event)
    audio = event["session"]["audio"]
    assert audio["input"]["format"] == {"type": "audio/pcmu"} == audio["output"]["format"]
    assert audio["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "low",
        "create_response": True,
        "interrupt_response": False,
    }
    assert audio["input"]["noise_reduction"] is None and audio["input"]["transcription"]["language"] == "sv"
    validate_client_dict(greeting(AssistantConfig(id=1, name="x", instructions="", welcome_message="Hej!")))
    assert greeting(AssistantConfig(id=1, name="x", instructions="")) is None


def test_echoed_formats_are_checked():
    cfg = AssistantConfig(id=1, name="x", instructions="", audio_format="ulaw")
    ok = {"audio": {"input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcmu"}}}}
    assert echoed_formats_match(cfg, ok) is None
    default = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}, "output": {}}}
    assert "audio.input.format" in echoed_formats_match(cfg, default)
