"""HTTP endpoints: Prometheus metrics (token-protected) and call recordings (staff only)."""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from prometheus_client import CONTENT_TYPE_LATEST

from calls.models import Call

from . import metrics

CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _text(body: str, status: int) -> HttpResponse:
    return HttpResponse(body + "\n", status=status, content_type="text/plain; charset=utf-8")


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus scrapes this with `Authorization: Bearer <METRICS_TOKEN>`."""
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token:
        return _text("Metrics are switched off: set METRICS_TOKEN on the server to enable /metrics.", 404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = _text("Send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'.", 401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # The database part runs in a pool thread of its own, never in the thread calls share.
    body = await sync_to_async(metrics.render, thread_sensitive=False)()
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `Range: bytes=…` request, or None to send the whole file."""
    found = _RANGE.match(header.strip())
    if not found or size == 0:
        return None
    first, last = found.groups()
    if first == "":
        if last == "":
            return None
        length = min(int(last), size)
        return size - length, size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start > end:
        raise ValueError("unsatisfiable")
    return start, end


async def _chunks(storage, name: str, first: int, length: int) -> AsyncIterator[bytes]:
    """The file's bytes [first, first + length), read in a worker thread; opened only once streaming starts."""
    fh = await asyncio.to_thread(storage.open, name, "rb")
    try:
        if first:
            await asyncio.to_thread(fh.seek, first)
        left = length
        while left > 0:
            data = await asyncio.to_thread(fh.read, min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data
    finally:
        await asyncio.to_thread(fh.close)


async def recording_view(request: HttpRequest, call_pk: int) -> HttpResponse:
    """A call's recording for the admin's audio player: staff who may view calls only, never public."""
    user = await request.auser()
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not (user.is_active and user.is_staff and await user.ahas_perm("calls.view_call")):
        return _text("You do not have permission to listen to call recordings.", 403)
    call = await Call.objects.filter(pk=call_pk).only("pk", "recording").afirst()
    if call is None or not call.recording:
        raise Http404("This call has no recording (recording was off, or it was deleted after its retention period).")
    field = call.recording
    try:
        size = await asyncio.to_thread(field.storage.size, field.name)
    except FileNotFoundError:
        raise Http404("The recording file is missing from storage.") from None
    try:
        wanted = _byte_range(request.headers.get("Range", ""), size)
    except ValueError:
        response = _text("Requested range not satisfiable.", 416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    first, last = wanted if wanted else (0, size - 1)
    length = max(0, last - first + 1)
    response = StreamingHttpResponse(
        _chunks(field.storage, field.name, first, length), content_type="audio/wav", status=206 if wanted else 200
    )
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-store"
    response["Content-Disposition"] = f'inline; filename="call-{call.pk}.wav"'
    if wanted:
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    return response
