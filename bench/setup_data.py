"""Creates the benchmark's assistants and numbers in the (throwaway) database named by DATABASE_URL.

Run after `manage.py migrate`: `python -m bench.setup_data`. The assistants are set up like the
baseline bridge's session (same instructions, voice and voice detection) plus what the product
adds on every call: a welcome message, caller transcription and interruptions.
"""

from __future__ import annotations

import os

import django

NUMBERS = {"pcm_24000": "+46700000101", "ulaw": "+46700000102"}
INSTRUCTIONS = "You are a helpful voice assistant. Keep answers short and clear."


def create() -> None:
    from assistants.models import Assistant, PhoneNumber

    for fmt, number in NUMBERS.items():
        assistant, _ = Assistant.objects.update_or_create(
            name=f"Benchmark {fmt}",
            defaults=dict(
                instructions=INSTRUCTIONS,
                welcome_message="Hello! How can I help you today?",
                voice="shimmer",
                audio_format=fmt,
                language="en",
                vad_threshold=0.9,
                silence_duration_ms=800,
                allow_interruptions=True,
            ),
        )
        PhoneNumber.objects.update_or_create(number=number, defaults={"assistant": assistant})


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceagent.settings")
    django.setup()
    create()
