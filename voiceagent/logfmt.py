"""`LOG_FORMAT=json`: one JSON object per log line, for log platforms that index fields.

Call lines carry `call_id`: taken from the record's `extra` when the code passed it, else from the
"call <id>…" prefix every call log line starts with. No Django imports: logging is configured
before apps are loaded.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re

_CALL_PREFIX = re.compile(r"^call (?P<id>[^\s:]+)[:\s]")
# Attributes every LogRecord has; anything else was passed as `extra` and is worth keeping.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if "call_id" not in out:
            found = _CALL_PREFIX.match(message)
            if found:
                out["call_id"] = found.group("id")
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)
