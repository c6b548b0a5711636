"""Calls a webhook tool's URL during a call and turns whatever happens into text for the model.

Async (httpx2) on the call's event loop, so a slow service only makes the model wait: the
caller's audio keeps flowing. Nothing here logs headers: the secret header stays secret.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from dataclasses import dataclass
from typing import Any

import httpx2

MAX_BODY_BYTES = 64 * 1024  # read at most this much of an answer
MAX_OUTPUT_CHARS = 4000  # and give the model at most this much
USER_AGENT = "voiceagent-tools/1"

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncClient] = weakref.WeakKeyDictionary()


def client() -> httpx2.AsyncClient:
    """One pooled client per event loop, so calls to the same service reuse their connections."""
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None or found.is_closed:
        found = _clients[loop] = httpx2.AsyncClient(
            follow_redirects=False, headers={"User-Agent": USER_AGENT}, limits=httpx2.Limits(max_connections=50)
        )
    return found


@dataclass(frozen=True)
class HttpOutcome:
    ok: bool
    status: str  # ToolCallStatus value
    output: str  # what the model is told
    error: str = ""  # for people, in the admin
    http_status: int | None = None
    body: str = ""  # what the service answered (truncated)


def truncate(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + " …(truncated)"


def _query(arguments: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in arguments.items()}


def _error(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


async def call_webhook(
    *,
    name: str,
    url: str,
    method: str,
    timeout: float,
    arguments: dict[str, Any],
    context: dict[str, Any],
    header_name: str = "",
    header_value: str = "",
) -> HttpOutcome:
    """Send the arguments (and who is calling) to the tool's URL; never raises for network trouble."""
    headers = {
        "X-Voiceagent-Tool": name,
        "X-Voiceagent-Call-Id": str(context.get("callid") or ""),
        "X-Voiceagent-From": str(context.get("from") or ""),
        "X-Voiceagent-To": str(context.get("to") or ""),
    }
    if header_name:
        headers[header_name] = header_value
    kwargs: dict[str, Any] = {"headers": headers, "timeout": httpx2.Timeout(timeout)}
    if method == "GET":
        kwargs["params"] = _query(arguments)
    else:
        kwargs["json"] = {"tool": name, "arguments": arguments, "call": context}
    try:
        async with asyncio.timeout(timeout):
            async with client().stream(method, url, **kwargs) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_BODY_BYTES:
                        break
    except (TimeoutError, httpx2.TimeoutException):
        return HttpOutcome(
            False,
            "timeout",
            _error(
                f"The {name} service did not answer within {timeout:g} seconds. Tell the caller it is not "
                "possible right now; do not pretend it worked."
            ),
            f"No answer within {timeout:g} s.",
        )
    except httpx2.HTTPError as exc:
        return HttpOutcome(
            False,
            "error",
            _error(f"The {name} service could not be reached. Tell the caller it is not possible right now."),
            f"Could not reach {url}: {type(exc).__name__}: {exc}"[:500],
        )
    text = bytes(body[:MAX_BODY_BYTES]).decode(response.encoding or "utf-8", errors="replace").strip()
    if 200 <= response.status_code < 300:
        output = truncate(text) if text else json.dumps({"ok": True})
        return HttpOutcome(True, "ok", output, http_status=response.status_code, body=truncate(text))
    return HttpOutcome(
        False,
        "error",
        json.dumps(
            {
                "error": f"The {name} service answered with an error (HTTP {response.status_code}). Tell the caller "
                "it did not work; do not pretend it did.",
                "details": truncate(text, 500),
            },
            ensure_ascii=False,
        ),
        f"HTTP {response.status_code}: {truncate(text, 500)}",
        http_status=response.status_code,
        body=truncate(text),
    )


def elapsed_ms(since: float) -> int:
    return int((time.monotonic() - since) * 1000)
