"""What an agent is: the Assistant people edit in admin, and the numbers that reach it."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from .analysis_schema import strict_problems
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
    # Limits
    max_call_minutes = models.PositiveIntegerField(
        "longest call (minutes)",
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(240)],
        help_text="When a call reaches this length the assistant says goodbye and hangs up.",
    )
    silence_timeout_seconds = models.PositiveIntegerField(
        "silence before a reminder (seconds)",
        default=20,
        validators=[MinValueValidator(5), MaxValueValidator(600)],
        help_text="If the caller says nothing for this long, the assistant checks they are still there; "
        "after the same again in silence it says goodbye and hangs up.",
    )
    # Actions
    end_call_enabled = models.BooleanField(
        "may hang up",
        default=True,
        help_text="The assistant may end the call itself when the conversation is over (after saying goodbye).",
    )
    transfer_number = models.CharField(
        "transfer to (number)",
        max_length=20,
        blank=True,
        validators=[validate_e164],
        help_text="A person's number the assistant may transfer callers to when they ask for a human. "
        "Leave empty to never transfer. See the README for the 46elks setting this needs.",
    )
    time_zone = models.CharField(
        max_length=50,
        default="Europe/Stockholm",
        help_text="Used when the assistant needs today's date or the time (e.g. for opening hours).",
    )
    datetime_tool_enabled = models.BooleanField(
        "knows the date and time", default=True, help_text="The assistant can look up the current date and time."
    )
    post_call_webhook_url = models.URLField(
        "after-call webhook URL",
        blank=True,
        help_text="After every call, the call, its transcript and usage are POSTed here as JSON.",
    )
    post_call_webhook_secret = models.CharField(
        "after-call webhook secret",
        max_length=200,
        blank=True,
        help_text="Used to sign each delivery (HMAC-SHA256), so your system can check it came from here.",
    )
    # Recordings
    record_calls = models.BooleanField(
        "record calls",
        default=False,
        help_text="Keep a recording of both sides of each call. Tell callers in the welcome message.",
    )
    recording_retention_days = models.PositiveIntegerField(
        "keep recordings for (days)",
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Recordings older than this are deleted automatically.",
    )
    # After the call (insights.analysis reads these; docs/analysis.md)
    analysis_summary_enabled = models.BooleanField(
        "write a summary",
        default=False,
        help_text="After each call a text model reads the transcript and writes a short summary of it.",
    )
    analysis_summary_instructions = models.TextField(
        "how to write the summary",
        blank=True,
        help_text="Optional, e.g. “Two sentences, in Swedish, mention the order number.”",
    )
    analysis_success_goal = models.TextField(
        "what counts as success",
        blank=True,
        help_text="The call's goal in words, e.g. “The caller booked a table.” Each call is then judged "
        "success, failure or unclear, with a one-line reason. Leave empty to skip.",
    )
    analysis_schema = models.JSONField(
        "fields to extract",
        default=dict,
        blank=True,
        help_text="The facts to pick out of each call (a name, a booking date, an order…), sent on to your "
        "systems with the call.",
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

    def clean(self) -> None:
        problems = strict_problems(self.analysis_schema)
        if problems:
            raise ValidationError({"analysis_schema": " ".join(p[0].upper() + p[1:] for p in problems)})

    @property
    def analysis_enabled(self) -> bool:
        """Whether calls to this assistant are analysed after they end."""
        return bool(self.analysis_summary_enabled or self.analysis_success_goal.strip() or self.analysis_schema)


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


class AssistantRevision(models.Model):
    """A saved version of an assistant's settings: who changed what, when; calls point at theirs."""

    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    settings = models.JSONField(help_text="Every setting of the assistant as it was saved.")
    changed_fields = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="assistant_revisions"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["assistant", "-number"]
        constraints = [models.UniqueConstraint(fields=["assistant", "number"], name="revision_number_unique")]

    def __str__(self) -> str:
        return f"{self.assistant} v{self.number}"
