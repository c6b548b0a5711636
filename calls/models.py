"""What happened: calls and what was said in them."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone


class CallStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected"


class CallDirection(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class EndReason(models.TextChoices):
    CALLER_HANGUP = "caller_hangup", "Caller hung up"
    ASSISTANT_HANGUP = "assistant_hangup", "Assistant ended the call"
    STAFF_HANGUP = "staff_hangup", "Ended by staff"
    TRANSFERRED = "transferred", "Transferred to a person"
    MAX_DURATION = "max_duration", "Reached the maximum call length"
    SILENCE = "silence", "Caller was silent too long"
    UNKNOWN_NUMBER = "unknown_number", "No active assistant for the dialled number"
    LIMIT = "limit", "Refused: too many calls at once"
    OPENAI_ERROR = "openai_error", "OpenAI failed"
    TELCO_ERROR = "telco_error", "46elks reported an error"
    CONNECTION_LOST = "connection_lost", "Connection to 46elks lost"
    SERVER_SHUTDOWN = "server_shutdown", "Server restarted during the call"
    PROTOCOL_ERROR = "protocol_error", "46elks sent something we could not use"
    INTERNAL_ERROR = "internal_error", "Internal error"


class ServerProcess(models.Model):
    """One start of a server process: its calls are closed once it stops beating (calls.processes)."""

    slot = models.CharField(
        max_length=100, db_index=True, help_text="Where it runs: the platform's dyno name, or host and port."
    )
    host = models.CharField(max_length=100, help_text="The machine (host name) it ran on.")
    pid = models.PositiveIntegerField("process id")
    boot_id = models.CharField("boot id", max_length=32, unique=True, help_text="This start of the process.")
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(
        db_index=True, help_text="Its last heartbeat. A process silent for long is dead and its calls are closed."
    )
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="When it stopped (or was found dead).")

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "server process"
        verbose_name_plural = "server processes"

    def __str__(self) -> str:
        return f"{self.slot} (pid {self.pid})"


class Call(models.Model):
    call_id = models.CharField("call id", max_length=100, unique=True, help_text="46elks' id of the call.")
    from_number = models.CharField("from", max_length=32, blank=True)
    to_number = models.CharField(
        "to", max_length=32, blank=True, help_text="The number 46elks reported as dialled. Map it in Phone numbers."
    )
    assistant = models.ForeignKey(
        "assistants.Assistant", null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    direction = models.CharField(max_length=10, choices=CallDirection.choices, default=CallDirection.INBOUND)
    status = models.CharField(max_length=10, choices=CallStatus.choices, default=CallStatus.ACTIVE, db_index=True)
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)
    end_detail = models.TextField(blank=True, help_text="What exactly went wrong, when something did.")
    is_test = models.BooleanField("test call", default=False, help_text="Made from the browser, not a phone.")
    started_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True)
    worker = models.CharField(
        max_length=100, blank=True, help_text="The server process that handled the call (for operations)."
    )
    last_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life from the process handling the call."
    )
    server = models.ForeignKey(
        ServerProcess,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="calls",
        help_text="The server process that handled the call; if it dies, the call is closed within 30 seconds.",
    )
    revision = models.ForeignKey(
        "assistants.AssistantRevision",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="calls",
        help_text="The assistant's settings as they were when the call was answered.",
    )
    usage = models.JSONField(default=dict, blank=True, help_text="Tokens and seconds OpenAI billed for the call.")
    cost = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    cost_currency = models.CharField(max_length=3, blank=True, default="USD")
    latency_p50_ms = models.PositiveIntegerField("reply time p50 (ms)", null=True, blank=True)
    latency_p95_ms = models.PositiveIntegerField("reply time p95 (ms)", null=True, blank=True)
    recording = models.FileField(upload_to="recordings/%Y/%m/", blank=True)
    transfer_to = models.CharField(max_length=20, blank=True, help_text="Where the caller was transferred.")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["assistant", "started_at"])]

    def __str__(self) -> str:
        # In the site's time zone, as "Started at" shows it next to this title.
        started = timezone.localtime(self.started_at) if self.started_at else None
        return f"{self.from_number or '?'} → {self.to_number or '?'} ({started:%Y-%m-%d %H:%M})"

    @property
    def duration_display(self) -> str:
        if self.duration is None:
            return "–"
        seconds = int(self.duration.total_seconds())
        return f"{seconds // 60}:{seconds % 60:02d}"

    def finish_fields(self, *, status: str, end_reason: str, detail: str, ended_at) -> None:
        self.status = status
        self.end_reason = end_reason
        self.end_detail = detail[:2000]
        self.ended_at = ended_at
        self.duration = max(ended_at - self.started_at, timedelta(0))


class TranscriptRole(models.TextChoices):
    CALLER = "caller", "Caller"
    ASSISTANT = "assistant", "Assistant"
    TOOL = "tool", "Tool"


class TranscriptEntry(models.Model):
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="transcript")
    position = models.PositiveIntegerField(
        help_text="Place in the conversation. A caller's words are often written down after the assistant "
        "has started answering; this keeps them before the answer."
    )
    role = models.CharField(max_length=10, choices=TranscriptRole.choices)
    text = models.TextField(blank=True)
    interrupted = models.BooleanField(default=False, help_text="The caller cut the assistant off here.")
    item_id = models.CharField(max_length=64, blank=True, help_text="OpenAI's id of this conversation item.")
    offset_ms = models.PositiveIntegerField(null=True, blank=True, help_text="When in the call it was said.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["call", "position"]
        verbose_name_plural = "transcript entries"
        constraints = [models.UniqueConstraint(fields=["call", "position"], name="transcript_position_unique")]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.text[:60]}"
