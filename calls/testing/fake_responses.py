"""A fake of OpenAI's Responses API (`POST /v1/responses`) on a real socket, for tests and demos.

It checks what a structured-output request must carry (a model, input, and `text.format` of type
json_schema with strict on and a schema) and answers in the real response shape. What it answers
is scripted, one entry per request, in order (the last one repeats):

    fake = FakeResponses.start()           # thread-backed; fake.base_url → "http://127.0.0.1:port/v1"
    fake.script("429", {"summary": "…"})    # first a rate limit, then this structured output
    fake.script(answer_fn)                  # fn(request_json) -> dict: an answer built from the request
    fake.script("timeout", "500", "malformed", "refusal")

Requests (and any shape problems found in them) are kept in `fake.requests` / `fake.problems`.
Standard library only: the server never imports it, and other helpers reuse it as it is.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = str | dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]

USAGE = {
    "input_tokens": 1200,
    "input_tokens_details": {"cached_tokens": 200},
    "output_tokens": 80,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 1280,
}


def request_problems(body: Any) -> list[str]:
    """What is wrong with a structured-output Responses request (empty: nothing)."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    problems = []
    if not isinstance(body.get("model"), str) or not body.get("model"):
        problems.append("model is missing")
    if not body.get("input"):
        problems.append("input is missing")
    fmt = ((body.get("text") or {}).get("format")) or {}
    if fmt.get("type") != "json_schema":
        problems.append("text.format.type is not json_schema")
    if fmt.get("strict") is not True:
        problems.append("text.format.strict is not true")
    if not fmt.get("name"):
        problems.append("text.format.name is missing")
    schema = fmt.get("schema")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        problems.append("text.format.schema is not an object schema")
    else:
        problems += strict_schema_problems(schema)
    return problems


def strict_schema_problems(schema: dict[str, Any], where: str = "schema") -> list[str]:
    """Structured outputs' strict rules: every object closes (additionalProperties false) and requires all."""
    problems: list[str] = []
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "object" in types:
        props = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            problems.append(f"{where}: additionalProperties must be false")
        if sorted(schema.get("required") or []) != sorted(props):
            problems.append(f"{where}: every property must be required")
        for key, sub in props.items():
            if isinstance(sub, dict):
                problems += strict_schema_problems(sub, f"{where}.{key}")
    if "array" in types and isinstance(schema.get("items"), dict):
        problems += strict_schema_problems(schema["items"], f"{where}[]")
    for sub in schema.get("anyOf") or []:
        if isinstance(sub, dict):
            problems += strict_schema_problems(sub, where)
    return problems


def example_for(schema: dict[str, Any]) -> Any:
    """A value that fits `schema` (the first choice, a fixed date, ...): the fake's default answer."""
    types = schema.get("type")
    kind = types[0] if isinstance(types, list) else types
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("anyOf"):
        return example_for(schema["anyOf"][0])
    if kind == "object":
        return {k: example_for(v) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind in ("number", "integer"):
        return 2
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if schema.get("format") == "date":
        return "2026-12-24"
    return "example"


def response_body(text: str, model: str, *, refusal: bool = False) -> dict[str, Any]:
    part = {"type": "refusal", "refusal": text} if refusal else {"type": "output_text", "text": text, "annotations": []}
    return {
        "id": f"resp_fake{time.monotonic_ns()}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": [
            {"id": "msg_fake", "type": "message", "role": "assistant", "status": "completed", "content": [part]}
        ],
        "usage": USAGE,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


class FakeResponses:
    """The fake server; `start()` serves it in a thread, `stop()` ends it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.problems: list[str] = []
        self._script: list[Answer] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.timeout_seconds = 5.0  # how long "timeout" holds the answer back
        self.httpd: ThreadingHTTPServer | None = None

    @classmethod
    def start(cls) -> FakeResponses:
        fake = cls()
        fake.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
        fake.httpd.daemon_threads = True
        threading.Thread(target=fake.httpd.serve_forever, name="fake-responses", daemon=True).start()
        return fake

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    @property
    def base_url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def script(self, *answers: Answer) -> None:
        """What the next requests get, in order: a dict (the output), a function, or one of
        "ok" (an example fitting the schema), "429", "500", "timeout", "malformed", "refusal"."""
        with self._lock:
            self._script = list(answers)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.headers.clear()
            self.problems.clear()
            self._script = []

    def wait_requests(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= n, timeout):
                raise AssertionError(f"expected {n} Responses requests, got {len(self.requests)}")
            return list(self.requests)

    def _next(self) -> Answer:
        with self._lock:
            if not self._script:
                return "ok"
            return self._script.pop(0) if len(self._script) > 1 else self._script[0]

    def answer(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, JSON body and headers for one request."""
        problems = request_problems(body)
        with self._arrived:
            self.requests.append(body)
            self.headers.append(headers)
            self.problems += problems
            self._arrived.notify_all()
        if problems:
            error = {"message": "; ".join(problems), "type": "invalid_request_error", "code": None, "param": None}
            return 400, {"error": error}, {}
        model = body["model"]
        schema = body["text"]["format"]["schema"]
        answer = self._next()
        if answer == "429":
            error = {"message": "Rate limit reached (fake)", "type": "requests", "code": "rate_limit_exceeded"}
            return 429, {"error": error}, {"retry-after-ms": "10"}
        if answer == "500":
            return 500, {"error": {"message": "The server had an error (fake)", "type": "server_error"}}, {}
        if answer == "timeout":
            time.sleep(self.timeout_seconds)
            return 200, response_body(json.dumps(example_for(schema)), model), {}
        if answer == "malformed":
            return 200, response_body('{"summary": "cut off', model), {}
        if answer == "refusal":
            return 200, response_body("I cannot help with that.", model, refusal=True), {}
        if answer == "ok":
            output = example_for(schema)
        elif callable(answer):
            output = answer(body)
        else:
            output = answer
        return 200, response_body(json.dumps(output), model), {}


def _handler(fake: FakeResponses) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path.rstrip("/") != "/v1/responses":
                return self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload, extra = fake.answer(body, headers)
            self._send(status, payload, extra)

        def _send(self, status: int, payload: dict[str, Any], extra: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

    return Handler
