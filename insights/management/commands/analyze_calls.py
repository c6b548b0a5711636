"""Analyse a call now (or show its stored analysis) and print the result as JSON."""

import json

from django.core.management.base import BaseCommand, CommandError

from calls.models import Call
from insights import analysis, analysis_services
from insights.models import AnalysisStatus, CallAnalysis


class Command(BaseCommand):
    help = "Analyse a finished call (summary, outcome, fields) and print the stored result as JSON."

    def add_arguments(self, parser):
        parser.add_argument("--call-id", required=True, help="46elks' id of the call (the call page shows it).")
        parser.add_argument("--force", action="store_true", help="Analyse again even if it was analysed already.")

    def handle(self, *args, call_id: str, force: bool = False, **options):
        call = Call.objects.select_related("assistant").filter(call_id=call_id).first()
        if call is None:
            raise CommandError(f"No call with the id {call_id!r}.")
        existing = CallAnalysis.objects.filter(call=call).first()
        if existing is None or force or existing.status == AnalysisStatus.PENDING:
            if call.assistant is None or not (call.assistant.analysis_enabled or force):
                raise CommandError(
                    "This call's assistant asks for no analysis: switch on a summary, a success goal or fields "
                    "in its “After the call” section (or use --force)."
                )
            pk = analysis_services.call_analysis_queue(call_pk=call.pk, force=force or existing is not None)
            if pk is not None:
                analysis.analyse(pk)
        stored = CallAnalysis.objects.get(call=call)
        result = {
            "callid": call.call_id,
            **stored.as_json(),
            "attempts": stored.attempts,
            "cost": str(stored.cost) if stored.cost is not None else None,
        }
        self.stdout.write(json.dumps(result, indent=2, ensure_ascii=False))
        if stored.status == AnalysisStatus.FAILED:
            raise CommandError(f"The analysis failed: {stored.error}")
