"""Outbound campaigns: an assistant calling a list of contacts, paced, in calling hours, with retries.

The do-not-call list lives here too: every outbound call checks it (tools.outbound's checks).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from assistants.phone import validate_e164


def _weekdays() -> list[int]:
    return [0, 1, 2, 3, 4]


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft (not calling yet)"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    CANCELLED = "cancelled", "Cancelled"
    DONE = "done", "Done"


class VoicemailPolicy(models.TextChoices):
    HANG_UP = "hang_up", "Hang up"
    LEAVE_MESSAGE = "leave_message", "Leave the message below, then hang up"


class Campaign(models.Model):
    assistant = models.ForeignKey("assistants.Assistant", on_delete=models.PROTECT, related_name="campaigns")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    max_concurrent = models.PositiveIntegerField(
        "max calls at once",
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="How many of this campaign's calls may ring or talk at the same time.",
    )
    calls_per_minute = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(600)],
        help_text="At most this many new calls are started in any minute.",
    )
    calling_hours_start = models.TimeField(default="09:00", help_text="No call starts before this local time.")
    calling_hours_end = models.TimeField(default="18:00", help_text="No call starts at or after this local time.")
    calling_days = models.JSONField(
        default=_weekdays,
        blank=True,
        help_text="Days calls may start, as numbers: 0 = Monday … 6 = Sunday, e.g. [0, 1, 2, 3, 4] for weekdays.",
    )
    time_zone = models.CharField(
        max_length=64,
        default="Europe/Stockholm",
        help_text="Calling hours are in this time zone, unless a contact has its own (e.g. Europe/London).",
    )
    retry_on_no_answer = models.BooleanField(default=True, help_text="Call again when nobody answered.")
    retry_on_busy = models.BooleanField(default=True, help_text="Call again when the line was busy.")
    retry_on_failed = models.BooleanField(default=False, help_text="Call again when 46elks could not place the call.")
    retry_on_voicemail = models.BooleanField(default=False, help_text="Call again when an answering machine took it.")
    retry_delay_minutes = models.PositiveIntegerField(default=60, help_text="Wait this long before calling again.")
    max_attempts = models.PositiveIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="Never call one contact more often than this.",
    )
    voicemail_policy = models.CharField(
        max_length=14,
        choices=VoicemailPolicy.choices,
        default=VoicemailPolicy.HANG_UP,
        help_text="What to do when an answering machine answers.",
    )
    voicemail_message = models.TextField(
        blank=True,
        help_text="Said after the beep when the policy is to leave a message; {{variables}} work here too.",
    )
    last_error = models.TextField(blank=True, help_text="Why the dialer last stopped or skipped a call.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        days = self.calling_days
        if not isinstance(days, list) or not days or any(d not in range(7) for d in days):
            errors["calling_days"] = "List the days as numbers from 0 (Monday) to 6 (Sunday), e.g. [0, 1, 2, 3, 4]."
        if self.calling_hours_start and self.calling_hours_end and self.calling_hours_start >= self.calling_hours_end:
            errors["calling_hours_end"] = "The calling hours must end after they start (the same day)."
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["time_zone"] = f"Unknown time zone {self.time_zone!r}: use a name like Europe/Stockholm."
        if self.voicemail_policy == VoicemailPolicy.LEAVE_MESSAGE and not self.voicemail_message.strip():
            errors["voicemail_message"] = "Write the message to leave, or choose to hang up."
        if errors:
            raise ValidationError(errors)


class ContactStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be called"
    DIALING = "dialing", "Calling now"
    DONE = "done", "Done"
    FAILED = "failed", "Gave up"
    SKIPPED = "skipped", "Not called (do-not-call list)"


class Outcome(models.TextChoices):
    COMPLETED = "completed", "Talked"
    NO_ANSWER = "no_answer", "No answer"
    BUSY = "busy", "Busy"
    FAILED = "failed", "Failed"
    VOICEMAIL = "voicemail", "Answering machine"
    OPTED_OUT = "opted_out", "Asked not to be called again"
    DO_NOT_CALL = "do_not_call", "On the do-not-call list"


class AnsweredBy(models.TextChoices):
    HUMAN = "human", "A person"
    MACHINE = "machine", "An answering machine"
    UNKNOWN = "unknown", "Unknown"


class Contact(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="contacts")
    number = models.CharField(max_length=20, validators=[validate_e164], help_text="International form, e.g. +4670…")
    variables = models.JSONField(default=dict, blank=True, help_text="This contact's {{variables}}, from the list.")
    time_zone = models.CharField(max_length=64, blank=True, help_text="Overrides the campaign's time zone.")
    status = models.CharField(max_length=10, choices=ContactStatus.choices, default=ContactStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Not called before this time.")
    last_outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    answered_by = models.CharField(max_length=8, choices=AnsweredBy.choices, blank=True)
    outbound = models.ForeignKey(
        "tools.OutboundCall",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The latest call placed to this contact.",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "pk"]
        constraints = [models.UniqueConstraint(fields=["campaign", "number"], name="campaign_contact_number_unique")]
        indexes = [models.Index(fields=["campaign", "status", "next_attempt_at"])]

    def __str__(self) -> str:
        return self.number


class ContactAttempt(models.Model):
    """One call to a contact: which OutboundCall it was, and how it went."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="attempt_records")
    outbound = models.OneToOneField(
        "tools.OutboundCall", null=True, blank=True, on_delete=models.SET_NULL, related_name="campaign_attempt"
    )
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class DoNotCall(models.Model):
    """A number no outbound call may ring, campaign or not."""

    number = models.CharField(max_length=20, unique=True, validators=[validate_e164])
    reason = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=20, blank=True, help_text="admin, call (the callee asked), import …")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "do-not-call number"

    def __str__(self) -> str:
        return self.number
