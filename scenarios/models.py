"""Scenario tests of an assistant: what a simulated caller wants, what must happen, and each run's results."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from assistants.models import Assistant, AssistantRevision


class Mode(models.TextChoices):
    TEXT = "text", "Text (cheap, fast: the caller is a text model)"
    VOICE = "voice", "Voice (the real phone path: a simulated caller speaks through 46elks' socket)"


class Scenario(models.Model):
    """One situation to test: a caller, the hard checks, the judge's criteria, how many times."""

    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="scenarios")
    slug = models.SlugField(
        "id", max_length=80, help_text="A short name for the scenario, e.g. “book-table-friday” (the YAML `id`)."
    )
    caller_instructions = models.TextField(
        "who the caller is and what they want",
        help_text="In words, e.g. “Eva, 67, wants a table for four on Friday at seven; says goodbye when booked.”",
    )
    caller_language = models.CharField("caller's language", max_length=20, blank=True, default="en")
    facts = models.TextField("facts the caller knows", blank=True, help_text="Optional: names, numbers, dates.")
    tools_called = models.JSONField(
        "tools that must be called",
        default=list,
        blank=True,
        help_text='A list like [{"name": "book_table", "arguments": {"guests": 4}}]: each tool must be called, '
        "and every argument given here must have exactly this value.",
    )
    ends_with = models.CharField(
        "how the call must end",
        max_length=60,
        blank=True,
        help_text="assistant_hangup, caller_hangup or transfer:<number> (e.g. transfer:+46700000000); empty: any way.",
    )
    max_turns = models.PositiveIntegerField(
        "at most this many turns", null=True, blank=True, help_text="A turn is one thing the caller says."
    )
    max_first_audio_ms = models.PositiveIntegerField(
        "first answer within (ms)",
        null=True,
        blank=True,
        help_text="The assistant's first reply must start within this many milliseconds.",
    )
    forbidden_phrases = models.JSONField(
        "phrases never to be said", default=list, blank=True, help_text='A list like ["card number", "I cannot"].'
    )
    judge = models.JSONField(
        "judge criteria",
        default=list,
        blank=True,
        help_text="A list of sentences a text model judges the transcript by, "
        'e.g. ["confirms the date before ending"].',
    )
    tool_mocks = models.JSONField(
        "mock tool answers",
        default=dict,
        blank=True,
        help_text='Optional: {"book_table": {"ok": true}} answers that tool with this instead of calling its webhook.',
    )
    repeat = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(50)], help_text="How many times to run it."
    )
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.TEXT)
    turn_limit = models.PositiveIntegerField(
        "stop after this many turns",
        default=12,
        validators=[MinValueValidator(1), MaxValueValidator(60)],
        help_text="A safety stop for conversations that never end.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["assistant", "slug"]
        constraints = [models.UniqueConstraint(fields=["assistant", "slug"], name="scenario_unique_slug")]

    def __str__(self) -> str:
        return f"{self.assistant.name} · {self.slug}"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Waiting to start"
    RUNNING = "running", "Running"
    DONE = "done", "Finished"
    FAILED = "failed", "Could not run"


class ScenarioRun(models.Model):
    """One run of some scenarios of an assistant, against the revision it had when the run started."""

    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="scenario_runs")
    revision = models.ForeignKey(
        AssistantRevision, on_delete=models.SET_NULL, null=True, blank=True, related_name="scenario_runs"
    )
    scenarios = models.ManyToManyField(Scenario, related_name="runs")
    mode = models.CharField(
        max_length=10, blank=True, help_text="Empty: each scenario in its own mode.", choices=Mode.choices
    )
    repeat = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: each scenario's own repeat.")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    cost_usd = models.DecimalField("cost (USD)", max_digits=10, decimal_places=4, default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "scenario run"

    def __str__(self) -> str:
        number = f" v{self.revision.number}" if self.revision_id else ""
        return f"Run {self.pk} of {self.assistant.name}{number}"


class ScenarioAttempt(models.Model):
    """One conversation of one scenario within a run."""

    run = models.ForeignKey(ScenarioRun, on_delete=models.CASCADE, related_name="attempts")
    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="attempts")
    index = models.PositiveIntegerField(default=1)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.TEXT)
    transcript = models.JSONField(default=list, blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    ended_with = models.CharField(max_length=60, blank=True)
    check_results = models.JSONField(default=list, blank=True)
    judge_results = models.JSONField(default=list, blank=True)
    passed = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    cost_usd = models.DecimalField("cost (USD)", max_digits=10, decimal_places=4, default=0)
    call = models.ForeignKey("calls.Call", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "scenario__slug", "index"]

    def __str__(self) -> str:
        return f"{self.scenario.slug} #{self.index}"


class ScenarioSettings(models.Model):
    """How an assistant's scenarios are run beyond a click (kept here, so the core's models stay as they are)."""

    assistant = models.OneToOneField(Assistant, on_delete=models.CASCADE, related_name="scenario_settings")
    run_on_prompt_change = models.BooleanField(
        "run scenarios after each prompt change",
        default=False,
        help_text="When the instructions or the welcome message are saved changed, all scenarios run against "
        "the new version; the result shows beside it under “Scenario tests”.",
    )

    class Meta:
        verbose_name = "scenario setting"

    def __str__(self) -> str:
        return f"Scenario settings of {self.assistant.name}"
