"""What a call cost and how fast it answered: the price table and each turn's reply time."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from assistants.analysis_schema import field_order
from calls.models import Call

from .pricing import Price

PER_MILLION = "per 1M tokens"


class PriceKind(models.TextChoices):
    REALTIME = "realtime", "Voice model (OpenAI Realtime)"
    TRANSCRIPTION = "transcription", "Caller transcription"
    TEXT = "text", "Text model (after-call analysis)"


def _token_price(label: str, help_text: str = "") -> models.DecimalField:
    return models.DecimalField(
        f"{label} ({PER_MILLION})",
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text=help_text,
    )


class ModelPrice(models.Model):
    """OpenAI's list price of one model. A call's cost is computed from these when it ends."""

    model = models.CharField(
        max_length=60,
        unique=True,
        help_text="The model's name exactly as OpenAI writes it, e.g. gpt-realtime-2.1 or gpt-4o-mini-transcribe.",
    )
    kind = models.CharField(max_length=20, choices=PriceKind.choices, default=PriceKind.REALTIME)
    currency = models.CharField(
        max_length=3, default="USD", help_text="Three-letter currency code of these prices. OpenAI bills in USD."
    )
    text_input = _token_price("text in", "Instructions, tool descriptions and written conversation read by the model.")
    cached_text_input = _token_price("cached text in", "Text the model had already read earlier in the call.")
    text_output = _token_price("text out", "Text the model writes (including its reasoning and tool calls).")
    audio_input = _token_price("audio in", "The caller's voice (about 10 tokens per second).")
    cached_audio_input = _token_price("cached audio in", "Audio the model had already heard earlier in the call.")
    audio_output = _token_price("audio out", "The assistant's voice (about 20 tokens per second).")
    per_minute = models.DecimalField(
        "per minute of audio",
        max_digits=10,
        decimal_places=5,
        null=True,
        blank=True,
        help_text="For transcription models billed by the length of the audio rather than by tokens.",
    )
    checked = models.BooleanField(
        "prices checked",
        default=False,
        help_text="Tick when someone has compared these prices with OpenAI's price page. Unticked prices are "
        "estimates: check and edit them.",
    )
    source = models.CharField(max_length=300, blank=True, help_text="Where the prices come from (a web address).")
    updated_at = models.DateTimeField("last edited", auto_now=True)

    class Meta:
        ordering = ["kind", "model"]
        verbose_name = "model price"

    def __str__(self) -> str:
        return self.model

    def clean(self) -> None:
        if self.kind == PriceKind.REALTIME:
            missing = [
                str(self._meta.get_field(name).verbose_name)
                for name in Price.REALTIME_FIELDS
                if getattr(self, name) is None
            ]
            if missing:
                raise ValidationError(f"A voice model needs every token price; missing: {', '.join(missing)}.")
        elif self.kind == PriceKind.TEXT:
            if None in (self.text_input, self.text_output):
                raise ValidationError(
                    "A text model needs prices for text in and text out (cached text in if it has one)."
                )
        elif self.per_minute is None and None in (self.text_input, self.audio_input, self.text_output):
            raise ValidationError(
                "A transcription model needs either a price per minute, or prices for text in, audio in and text out."
            )

    def as_price(self) -> Price:
        return Price(
            model=self.model,
            currency=self.currency,
            **{name: getattr(self, name) for name in (*Price.REALTIME_FIELDS, "per_minute")},
        )


class TurnLatency(models.Model):
    """One turn of a call: how long the caller waited for the assistant to start answering."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="turn_latencies")
    turn = models.PositiveIntegerField(help_text="1 for the caller's first turn, and so on.")
    at_ms = models.PositiveIntegerField("at (ms into the call)", help_text="When OpenAI heard the caller stop.")
    reply_ms = models.PositiveIntegerField(
        "reply time (ms)", help_text="From OpenAI noticing the caller stopped to the first reply audio sent to 46elks."
    )
    bridge_ms = models.FloatField(
        "bridge share (ms)",
        null=True,
        blank=True,
        help_text="Part of the reply time spent in this server: from OpenAI's first audio arriving to it "
        "leaving for 46elks.",
    )
    response_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["call", "turn"]
        verbose_name = "reply time"
        constraints = [models.UniqueConstraint(fields=["call", "turn"], name="turn_latency_unique")]

    def __str__(self) -> str:
        return f"turn {self.turn}: {self.reply_ms} ms"


class CallCostSummary(Call):
    """Admin's totals page: the same calls, summed per day and per assistant."""

    class Meta:
        proxy = True
        verbose_name = "cost and reply-time summary"
        verbose_name_plural = "cost and reply-time summary"


class AnalysisStatus(models.TextChoices):
    PENDING = "pending", "Waiting"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class AnalysisOutcome(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    UNCLEAR = "unclear", "Unclear"


class CallAnalysis(models.Model):
    """What a text model made of a finished call: summary, outcome and the assistant's fields."""

    call = models.OneToOneField(Call, on_delete=models.CASCADE, related_name="analysis")
    status = models.CharField(
        max_length=10, choices=AnalysisStatus.choices, default=AnalysisStatus.PENDING, db_index=True
    )
    summary = models.TextField(blank=True)
    outcome = models.CharField(
        max_length=10,
        choices=AnalysisOutcome.choices,
        blank=True,
        db_index=True,
        help_text="Whether the call reached the assistant's goal (see the assistant's “what counts as success”).",
    )
    reason = models.TextField("why", blank=True, help_text="The model's one-line reason for the outcome.")
    data = models.JSONField("extracted fields", default=dict, blank=True)
    model = models.CharField(max_length=60, blank=True)
    error = models.TextField(blank=True, help_text="Why the analysis failed, when it did.")
    attempts = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "call analysis"
        verbose_name_plural = "call analyses"

    def __str__(self) -> str:
        return f"analysis of call {self.call_id}: {self.status}"

    def as_json(self) -> dict:
        """The API's and the webhook's `analysis` object (fields in the order the assistant lists them)."""
        assistant = self.call.assistant if self.call_id else None
        order = field_order(assistant.analysis_schema) if assistant is not None else []
        data = self.data or {}
        data = {**{k: data[k] for k in order if k in data}, **{k: v for k, v in data.items() if k not in order}}
        return {
            "status": self.status,
            "summary": self.summary or None,
            "outcome": self.outcome or None,
            "reason": self.reason or None,
            "data": data,
            "model": self.model or None,
            "error": self.error or None,
        }
