"""What an agent is: the Assistant people edit in admin, and the numbers that reach it."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from .phone import normalize_e164, validate_e164


class Voice(models.TextChoices):
    MARIN = "marin", "Marin (recommended)"
    CEDAR = "cedar", "Cedar (recommended)"
    ALLOY = "alloy", "Alloy"
    ASH = "ash", "Ash"
    BALLAD = "ballad", "Ballad"
    CORAL = "coral", "Coral"
    ECHO = "echo", "Echo"
    SAGE = "sage", "Sage"
    SHIMMER = "shimmer", "Shimmer"
    VERSE = "verse", "Verse"


class RealtimeModel(models.TextChoices):
    GPT_REALTIME_2_1 = "gpt-realtime-2.1", "gpt-realtime-2.1 (best quality)"
    GPT_REALTIME_2_1_MINI = "gpt-realtime-2.1-mini", "gpt-realtime-2.1-mini (lower cost)"
    GPT_REALTIME_2 = "gpt-realtime-2", "gpt-realtime-2"
    GPT_REALTIME_1_5 = "gpt-realtime-1.5", "gpt-realtime-1.5"


class AudioFormatChoice(models.TextChoices):
    PCM_24000 = "pcm_24000", "High quality (PCM 24 kHz)"
    ULAW = "ulaw", "Telephone µ-law (G.711, 8 kHz)"
    ALAW = "alaw", "Telephone A-law (G.711, 8 kHz)"


class TurnDetection(models.TextChoices):
    SERVER_VAD = "server_vad", "By pauses (waits for a set silence)"
    SEMANTIC_VAD = "semantic_vad", "By meaning (waits until the caller seems finished)"


class Eagerness(models.TextChoices):
    AUTO = "auto", "Automatic"
    LOW = "low", "Low: lets the caller take their time"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High: answers as soon as possible"


class NoiseReduction(models.TextChoices):
    NEAR_FIELD = "near_field", "Phone held to the ear"
    FAR_FIELD = "far_field", "Speakerphone or conference room"
    OFF = "off", "Off"


class TranscriptionModel(models.TextChoices):
    GPT_4O_MINI_TRANSCRIBE = "gpt-4o-mini-transcribe", "gpt-4o-mini-transcribe"
    GPT_4O_TRANSCRIBE = "gpt-4o-transcribe", "gpt-4o-transcribe"
    GPT_TRANSCRIBE = "gpt-transcribe", "gpt-transcribe"
    OFF = "off", "Off (no caller transcript)"


class Assistant(models.Model):
    name = models.CharField(max_length=100, unique=True, help_text="A name your team recognises, e.g. “Reception”.")
    instructions = models.TextField(
        help_text="Who the assistant is and how it should behave on the phone. Write it like a briefing "
        "to a new colleague: the business, the tone, what to help with, what never to say. Short spoken "
        "answers work best on the phone.",
    )
    welcome_message = models.TextField(
        blank=True,
        help_text="What the assistant says as soon as it picks up. Leave empty to let the caller speak first.",
    )
    voice = models.CharField(
        max_length=20,
        choices=Voice.choices,
        default=Voice.MARIN,
        help_text="The voice callers hear. It cannot change in the middle of a call.",
    )
    model = models.CharField(
        max_length=40,
        choices=RealtimeModel.choices,
        default=RealtimeModel.GPT_REALTIME_2_1,
        help_text="The OpenAI model. The mini model costs about a third and is a little less capable.",
    )
    audio_format = models.CharField(
        max_length=12,
        choices=AudioFormatChoice.choices,
        default=AudioFormatChoice.PCM_24000,
        help_text="How sound travels between 46elks and OpenAI. High quality suits most calls; the "
        "telephone formats use a third of the bandwidth. Nothing is converted on the way.",
    )
    language = models.CharField(
        max_length=8,
        blank=True,
        default="sv",
        help_text="The language callers speak, as a two-letter code (sv, en, fi…). It helps the caller's "
        "words be written down correctly. Say the language in the instructions too.",
    )
    transcription_model = models.CharField(
        max_length=40,
        choices=TranscriptionModel.choices,
        default=TranscriptionModel.GPT_4O_MINI_TRANSCRIBE,
        help_text="Writes down what the caller says for the transcript. Billed separately by OpenAI.",
    )
    turn_detection = models.CharField(
        max_length=20,
        choices=TurnDetection.choices,
        default=TurnDetection.SERVER_VAD,
        help_text="How the assistant decides the caller has finished speaking.",
    )
    vad_threshold = models.FloatField(
        "speech sensitivity",
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="From 0 to 1: how loud sound must be to count as the caller speaking. Raise it (0.6–0.8) "
        "if background noise makes the assistant stop talking. Used with “by pauses”.",
    )
    prefix_padding_ms = models.PositiveIntegerField(
        "audio kept before speech (ms)",
        default=300,
        validators=[MaxValueValidator(2000)],
        help_text="How much sound from just before the caller starts speaking is kept, so first syllables "
        "are not lost. Used with “by pauses”.",
    )
    silence_duration_ms = models.PositiveIntegerField(
        "pause that ends the caller's turn (ms)",
        default=500,
        validators=[MinValueValidator(100), MaxValueValidator(5000)],
        help_text="How long a pause ends the caller's turn. Shorter feels snappier; longer lets people "
        "think without being interrupted. Used with “by pauses”.",
    )
    eagerness = models.CharField(
        max_length=10,
        choices=Eagerness.choices,
        default=Eagerness.AUTO,
        help_text="How quickly the assistant answers. Used with “by meaning”.",
    )
    allow_interruptions = models.BooleanField(
        default=True,
        help_text="Callers can talk over the assistant to stop it, as in a normal conversation. Turn off "
        "for messages that must be heard to the end.",
    )
    noise_reduction = models.CharField(
        max_length=12,
        choices=NoiseReduction.choices,
        default=NoiseReduction.NEAR_FIELD,
        help_text="Filters background noise from the caller's audio before the assistant hears it.",
    )
    speed = models.FloatField(
        "speaking speed",
        default=1.0,
        validators=[MinValueValidator(0.25), MaxValueValidator(1.5)],
        help_text="1.0 is normal; 0.8 is slower, 1.2 faster.",
    )
    is_active = models.BooleanField(
        "active", default=True, help_text="Inactive assistants answer no calls; their numbers are refused."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField("last edited", auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(vad_threshold__gte=0) & models.Q(vad_threshold__lte=1), name="vad_threshold_0_1"
            ),
            models.CheckConstraint(condition=models.Q(speed__gte=0.25) & models.Q(speed__lte=1.5), name="speed_range"),
        ]

    def __str__(self) -> str:
        return self.name


class PhoneNumber(models.Model):
    number = models.CharField(
        max_length=20,
        unique=True,
        validators=[validate_e164],
        help_text="The number callers dial, or the 46elks websocket number, in international form: +46…",
    )
    assistant = models.ForeignKey(
        Assistant,
        on_delete=models.PROTECT,
        related_name="numbers",
        help_text="The assistant that answers calls to this number.",
    )
    label = models.CharField(max_length=100, blank=True, help_text="A note for your team, e.g. “Support line”.")
    is_active = models.BooleanField("active", default=True, help_text="Calls to an inactive number are refused.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        verbose_name = "phone number"

    def __str__(self) -> str:
        return f"{self.number} ({self.label})" if self.label else self.number

    def clean(self) -> None:
        if self.number:
            try:
                self.number = normalize_e164(self.number)
            except ValueError:
                pass  # the field validator reports it

    def save(self, *args, **kwargs) -> None:
        self.number = normalize_e164(self.number)
        super().save(*args, **kwargs)
