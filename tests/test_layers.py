"""The single-process channel layer: Channels' in-memory layer with its sweeps rationed."""

from __future__ import annotations

from channels.layers import InMemoryChannelLayer as ChannelsLayer

from voiceagent.layers import InMemoryChannelLayer


async def test_group_messages_arrive_while_sweeps_are_rationed(monkeypatch):
    sweeps = []
    real_sweep = ChannelsLayer._clean_expired
    monkeypatch.setattr(ChannelsLayer, "_clean_expired", lambda self: sweeps.append(1) or real_sweep(self))
    layer = InMemoryChannelLayer()
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("calls", channel)
    for n in range(50):
        await layer.group_send("calls", {"type": "call.event", "n": n})
    for channel in channels:
        assert [(await layer.receive(channel))["n"] for _ in range(50)] == list(range(50))
    assert len(sweeps) == 1  # Channels' own layer sweeps on each of these 200 calls


async def test_expired_messages_are_still_swept():
    layer = InMemoryChannelLayer(expiry=-1)  # every message is already past its expiry
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "old"})
    layer._swept_at = float("-inf")  # a second has passed
    layer._clean_expired()
    assert channel not in layer.channels
