"""Seed the price table with OpenAI's list prices (USD) for the models assistants can use.

Voice models: shared/reference/openai-realtime-ga.md §6 (developers.openai.com model pages, late 2026).
Transcription: gpt-transcribe's $0.0045/min is on its model page; the gpt-4o-*-transcribe token prices
are the long-standing list prices and are left unchecked: compare them with OpenAI's price page and edit.
Existing rows (a price someone already entered) are never overwritten.
"""

from decimal import Decimal as D

from django.db import migrations

DOCS = "https://developers.openai.com/api/docs/models/"

VOICE = [
    # model, text in, cached text in, text out, audio in, cached audio in, audio out
    ("gpt-realtime-2.1", "4.00", "0.40", "24.00", "32.00", "0.40", "64.00"),
    ("gpt-realtime-2.1-mini", "0.60", "0.06", "2.40", "10.00", "0.30", "20.00"),
    ("gpt-realtime-2", "4.00", "0.40", "24.00", "32.00", "0.40", "64.00"),
    ("gpt-realtime-1.5", "4.00", "0.40", "16.00", "32.00", "0.40", "64.00"),
]

TRANSCRIPTION = [
    # model, text in, audio in, text out, per minute, checked
    ("gpt-4o-mini-transcribe", "1.25", "3.00", "5.00", "0.003", False),
    ("gpt-4o-transcribe", "2.50", "6.00", "10.00", "0.006", False),
    ("gpt-transcribe", None, None, None, "0.0045", True),
]


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("insights", "ModelPrice")
    for model, ti, tc, to, ai, ac, ao in VOICE:
        ModelPrice.objects.get_or_create(
            model=model,
            defaults=dict(
                kind="realtime",
                currency="USD",
                text_input=D(ti),
                cached_text_input=D(tc),
                text_output=D(to),
                audio_input=D(ai),
                cached_audio_input=D(ac),
                audio_output=D(ao),
                checked=True,
                source=DOCS + model,
            ),
        )
    for model, ti, ai, to, per_minute, checked in TRANSCRIPTION:
        ModelPrice.objects.get_or_create(
            model=model,
            defaults=dict(
                kind="transcription",
                currency="USD",
                text_input=D(ti) if ti else None,
                audio_input=D(ai) if ai else None,
                text_output=D(to) if to else None,
                per_minute=D(per_minute),
                checked=checked,
                source=DOCS + model + ("" if checked else " (check and edit)"),
            ),
        )


class Migration(migrations.Migration):
    dependencies = [("insights", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
