"""Where apps above the dashboard add to its pages; the dashboard names none of them, settings do.

- `settings.DASHBOARD_PANELS`: functions `(request) -> html` ("" for nothing), shown on the
  index page under the live calls (e.g. campaigns' progress).
- `settings.DASHBOARD_CALL_DETAILS`: functions `(call) -> html`, shown in a call's side panel
  (e.g. a warm transfer's hand-off note for the person receiving the call).
Each must be cheap (a query or two) and return escaped HTML (format_html / render_to_string);
one that fails is logged and left out, never the page.
"""

from __future__ import annotations

import logging
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString, mark_safe

log = logging.getLogger(__name__)


@cache
def _functions(name: str) -> tuple:
    return tuple(import_string(path) for path in getattr(settings, name, []))


def _collect(name: str, arg) -> list[SafeString]:
    parts = []
    for function in _functions(name):
        try:
            html = function(arg)
        except Exception:
            log.exception("dashboard extension %s failed", getattr(function, "__qualname__", function))
            continue
        if html:
            parts.append(mark_safe(html))  # the extension escapes (see the docstring)
    return parts


def panels(request) -> list[SafeString]:
    return _collect("DASHBOARD_PANELS", request)


def call_details(call) -> list[SafeString]:
    return _collect("DASHBOARD_CALL_DETAILS", call)
