"""The dashboard's WebSocket paths, in one place for the router and the pages."""

DASHBOARD_SOCKET = "ws/dashboard/"
BROWSER_CALL_SOCKET = "ws/browser-call/<int:assistant_id>/"


def browser_call_path(assistant_id: int) -> str:
    return f"/ws/browser-call/{assistant_id}/"
