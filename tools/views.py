"""HTTP endpoints of the tools app: 46elks' `next` and `whenhangup` callbacks, the pizza demo's
order endpoint, and the token-authenticated JSON API for outbound calls."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from assistants.models import Assistant
from calls.access import client_ip, ip_allowed, secret_matches
from calls.hooks import call_document_parts

from . import services
from .handoff import send_handoff_sms
from .models import OutboundCall
from .outbound import OutboundCallError, place_outbound_call

log = logging.getLogger(__name__)

# What 46elks is told when a call has nothing after the AI leg: end it.
HANG_UP = {"hangup": "reject"}


def _client(request: HttpRequest) -> str:
    scope = getattr(request, "scope", None)  # ASGI; the test client's requests have none
    if scope is None:
        scope = {"client": (request.META.get("REMOTE_ADDR", "unknown"), 0), "headers": []}
    return client_ip(scope)


def _from_46elks(request: HttpRequest, secret: str) -> bool:
    """The secret in the path (as on the call socket), and the source address when ELKS_ALLOWED_IPS is set."""
    if not secret_matches(secret, settings.ELKS_WS_SECRET):
        log.warning("refused a 46elks callback with a wrong secret from %s", _client(request))
        return False
    allowed = getattr(settings, "ELKS_ALLOWED_IPS", [])
    if allowed and not ip_allowed(_client(request), allowed):
        log.warning("refused a 46elks callback from %s: not in ELKS_ALLOWED_IPS", _client(request))
        return False
    return True


@csrf_exempt
@require_POST
def elks_next(request: HttpRequest, secret: str) -> HttpResponse:
    """46elks asks what comes after the `connect` to our websocket number: a person, or hang up."""
    if not _from_46elks(request, secret):
        return HttpResponse(status=404)
    callid = request.POST.get("callid") or request.POST.get("id") or ""
    transfer = services.transfer_claim(
        callid=callid, from_number=request.POST.get("from", ""), to_number=request.POST.get("to", "")
    )
    if transfer is None:
        log.info("46elks next for call %s (result %s): no transfer; hanging up", callid, request.POST.get("result"))
        return JsonResponse(HANG_UP)
    if transfer.summary and settings.TRANSFER_SMS:
        send_handoff_sms(transfer)  # just before the caller is connected: the colleague reads it as it rings
    log.info("46elks next for call %s: connecting the caller to %s", callid, transfer.to_number)
    return JsonResponse({"connect": transfer.to_number})


@csrf_exempt
@require_POST
def elks_hangup(request: HttpRequest, secret: str) -> HttpResponse:
    """46elks' `whenhangup` for a call we placed: an unanswered call stops waiting for its WebSocket leg."""
    if not _from_46elks(request, secret):
        return HttpResponse(status=404)
    callid = request.POST.get("id") or request.POST.get("callid") or ""
    if callid:
        services.outbound_call_hung_up(elks_call_id=callid, state=request.POST.get("state", ""))
    return HttpResponse(status=204)


# ------------------------------------------------------------------ the pizza demo


def demo_token() -> str:
    """The demo endpoint's path secret, derived from SECRET_KEY: stable per install, unguessable."""
    return hmac.new(settings.SECRET_KEY.encode(), b"voiceagent pizza demo", hashlib.sha256).hexdigest()[:32]


def _bad(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_POST
def demo_orders(request: HttpRequest, token: str) -> HttpResponse:
    """The pizza demo's `submit_order` tool lands here; the order is stored and shown in admin."""
    if not hmac.compare_digest(token.encode(), demo_token().encode()):
        return HttpResponse(status=404)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return _bad("The body must be JSON.")
    args = body.get("arguments") if isinstance(body, dict) else None
    call = (body.get("call") or {}) if isinstance(body, dict) else {}
    if not isinstance(args, dict):
        return _bad("Expected the webhook tool's body: {'arguments': {...}, 'call': {...}}.")
    items = args.get("items")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) and i.get("pizza") for i in items):
        return _bad("An order needs at least one item with a pizza name.")
    kind = str(args.get("pickup_or_delivery") or "pickup")
    address = str(args.get("address") or "")
    if kind == "delivery" and not address:
        return _bad("A delivery needs an address: ask the caller for it.")
    order = services.pizza_order_create(
        callid=str(call.get("callid") or ""),
        phone=str(call.get("from") or ""),
        customer_name=str(args.get("customer_name") or ""),
        items=items,
        pickup_or_delivery=kind,
        address=address,
        notes=str(args.get("notes") or ""),
    )
    minutes = 35 if kind == "delivery" else 20
    return JsonResponse(
        {
            "order_id": order.pk,
            "status": "received",
            "summary": order.summary,
            "ready_in_minutes": minutes,
            "message": f"Order {order.pk} is placed; it will be ready in about {minutes} minutes.",
        },
        status=201,
    )


# ------------------------------------------------------------------ JSON API


def _token(request: HttpRequest):
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return services.api_token_authenticate(raw=raw.strip())


def _unauthorized() -> JsonResponse:
    response = JsonResponse(
        {"error": "Send a valid API token: 'Authorization: Bearer <token>' (create one in admin › API tokens)."},
        status=401,
    )
    response["WWW-Authenticate"] = 'Bearer realm="voiceagent"'
    return response


def outbound_json(outbound: OutboundCall) -> dict:
    call = outbound.call
    return {
        "id": outbound.pk,
        "status": outbound.status,
        "assistant": {"id": outbound.assistant_id, "name": outbound.assistant.name},
        "to": outbound.to_number,
        "from": outbound.from_number,
        "elks_call_id": outbound.elks_call_id or None,
        "error": outbound.error or None,
        "created_at": outbound.created_at.isoformat(),
        "call": (
            {"id": call.pk, "status": call.status, "end_reason": call.end_reason or None, **call_document_parts(call)}
            if call is not None
            else None
        ),
    }


def _find_assistant(ref) -> Assistant | None:
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        return Assistant.objects.filter(pk=int(ref)).first()
    if isinstance(ref, str) and ref.strip():
        return Assistant.objects.filter(name=ref.strip()).first()
    return None


@csrf_exempt
@require_http_methods(["GET", "POST"])
def api_calls(request: HttpRequest) -> HttpResponse:
    """POST /api/calls/ {"assistant": <id or name>, "to": "+46…"}: ring a number with an assistant.
    GET /api/calls/?limit=50: the latest outbound calls, newest first (each with its call's analysis)."""
    if _token(request) is None:
        return _unauthorized()
    if request.method == "GET":
        try:
            limit = max(1, min(500, int(request.GET.get("limit", "50"))))
        except ValueError:
            return _bad("'limit' must be a number from 1 to 500.")
        outbound = OutboundCall.objects.select_related("assistant", "call").order_by("-created_at", "-pk")[:limit]
        return JsonResponse({"outbound_calls": [outbound_json(o) for o in outbound]})
    try:
        body = json.loads(request.body or b"")
    except ValueError:
        return _bad('The body must be JSON: {"assistant": <id or name>, "to": "+46…"}.')
    if not isinstance(body, dict) or not body.get("to") or body.get("assistant") in (None, ""):
        return _bad('Both "assistant" (id or name) and "to" (a phone number, +46…) are required.')
    assistant = _find_assistant(body["assistant"])
    if assistant is None:
        return _bad(f"No assistant {body['assistant']!r}.", 404)
    try:
        outbound = place_outbound_call(assistant=assistant, to=str(body["to"]), source="api")
    except OutboundCallError as exc:
        payload = {"error": exc.message}
        if exc.outbound is not None:
            payload["outbound_call"] = outbound_json(exc.outbound)
        if exc.status is not None:
            payload["elks_status"] = exc.status
        return JsonResponse(payload, status=exc.http_status)
    return JsonResponse(outbound_json(outbound), status=201)


@csrf_exempt
@require_http_methods(["GET"])
def api_call_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """GET /api/calls/<id>/: how an outbound call is going."""
    if _token(request) is None:
        return _unauthorized()
    outbound = OutboundCall.objects.select_related("assistant", "call").filter(pk=pk).first()
    if outbound is None:
        return _bad(f"No outbound call {pk}.", 404)
    return JsonResponse(outbound_json(outbound))
