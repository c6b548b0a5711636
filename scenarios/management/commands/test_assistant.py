"""`manage.py test_assistant <name or id>`: run an assistant's scenarios, print a table, exit 1 on a failure (CI)."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from django.core.management.base import BaseCommand, CommandError

from assistants.models import Assistant
from scenarios.models import Mode
from scenarios.selectors import run_summary
from scenarios.services import run_create, run_execute


class Command(BaseCommand):
    help = "Run an assistant's scenario tests; exits with 1 if any attempt fails."

    def add_arguments(self, parser) -> None:
        parser.add_argument("assistant", help="The assistant's name or id.")
        parser.add_argument("--scenario", action="append", default=[], help="Only this scenario id (repeatable).")
        parser.add_argument("--mode", choices=Mode.values, default="", help="Run every scenario in this mode.")
        parser.add_argument("--repeat", type=int, default=None, help="Run each scenario this many times.")
        parser.add_argument("--junit", default="", help="Also write a JUnit XML report to this file.")

    def handle(self, *args, **options) -> None:
        key = options["assistant"]
        assistant = Assistant.objects.filter(name=key).first()
        if assistant is None and key.isdigit():
            assistant = Assistant.objects.filter(pk=int(key)).first()
        if assistant is None:
            raise CommandError(f"No assistant is called or numbered {key!r}.")
        scenarios = assistant.scenarios.all()
        if options["scenario"]:
            scenarios = scenarios.filter(slug__in=options["scenario"])
            missing = set(options["scenario"]) - set(scenarios.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"{assistant.name} has no scenario {', '.join(sorted(missing))}.")
        if not scenarios.exists():
            raise CommandError(f"{assistant.name} has no scenarios to run.")
        repeat = options["repeat"]
        if repeat is not None and repeat < 1:
            raise CommandError("--repeat must be 1 or more.")
        run = run_create(assistant=assistant, scenarios=list(scenarios), mode=options["mode"], repeat=repeat)
        run = run_execute(run_pk=run.pk)
        if run.error:
            raise CommandError(f"The run could not finish: {run.error}")
        summary = run_summary(run)
        self.stdout.write(f"{'scenario':<30} {'passed':>8}  first failure")
        for row in summary:
            failure = next((_failure(a) for a in row["attempts"] if not a.passed), "")
            self.stdout.write(f"{row['scenario'].slug:<30} {row['passed']:>3}/{len(row['attempts']):<4}  {failure}")
        self.stdout.write(f"{run.passed} of {run.total} attempts passed · ${run.cost_usd} · run {run.pk}")
        if options["junit"]:
            _write_junit(options["junit"], assistant.name, summary)
        if run.passed != run.total:
            raise SystemExit(1)


def _failure(attempt) -> str:
    if attempt.error:
        return attempt.error
    for check in attempt.check_results:
        if not check["passed"]:
            return f"{check['name']}: {check['reason']}"
    for verdict in attempt.judge_results:
        if not verdict["passed"]:
            return f"judge “{verdict['criterion']}”: {verdict['reason']}"
    return ""


def _write_junit(path: str, suite: str, summary: list[dict]) -> None:
    cases, failures = [], 0
    for row in summary:
        for attempt in row["attempts"]:
            name = quoteattr(f"{row['scenario'].slug} #{attempt.index}")
            if attempt.passed:
                cases.append(f"  <testcase classname={quoteattr(suite)} name={name}/>")
            else:
                failures += 1
                message = quoteattr(_failure(attempt))
                cases.append(
                    f"  <testcase classname={quoteattr(suite)} name={name}><failure message={message}/></testcase>"
                )
    head = f'<testsuite name={quoteattr(suite)} tests="{len(cases)}" failures="{failures}">'
    with open(path, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n' + head + "\n" + "\n".join(cases) + "\n</testsuite>\n")
