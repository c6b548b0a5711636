"""`GET /api/calls/export.csv` and `.jsonl`: calls with their analysis, for the business' own systems.

Here, on the top floor, because it joins two siblings: the API tokens (tools) and the export
(insights). The rows stream: 100k calls never sit in memory at once.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from insights.export import ExportError, filtered_calls, streaming_response
from tools.services import api_token_authenticate


@require_GET
def export_calls(request: HttpRequest, kind: str) -> HttpResponse:
    """?from=2026-12-01&to=2026-12-31&assistant=<id or name>, all optional; Bearer token as the rest of /api/."""
    if kind not in ("csv", "jsonl"):
        return JsonResponse({"error": "Export as export.csv or export.jsonl."}, status=404)
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or api_token_authenticate(raw=raw.strip()) is None:
        response = JsonResponse(
            {"error": "Send a valid API token: 'Authorization: Bearer <token>' (create one in admin › API tokens)."},
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="voiceagent"'
        return response
    try:
        calls = filtered_calls(
            start=request.GET.get("from", ""), end=request.GET.get("to", ""), assistant=request.GET.get("assistant", "")
        )
    except ExportError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return streaming_response(calls, kind)
