"""The campaigns' part of the live dashboard (settings.DASHBOARD_PANELS): running campaigns' progress.

The panel reloads itself every few seconds from `campaigns:panel` (a fragment), so the counts
move while the dialer works, without the dashboard knowing about campaigns.
"""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from .models import Campaign, CampaignStatus
from .selectors import campaign_progress

REFRESH_SECONDS = 5


def _rows() -> list[tuple[Campaign, object]]:
    campaigns = Campaign.objects.filter(status__in=(CampaignStatus.RUNNING, CampaignStatus.PAUSED)).select_related(
        "assistant"
    )[:20]
    return [(c, campaign_progress(c)) for c in campaigns]


def campaigns_panel(request: HttpRequest) -> str:
    rows = _rows()
    if not rows:
        return ""
    return render_to_string(
        "campaigns/dashboard_panel.html", {"rows": rows, "refresh_ms": REFRESH_SECONDS * 1000}, request=request
    )


@staff_member_required
def panel_fragment(request: HttpRequest) -> HttpResponse:
    return HttpResponse(campaigns_panel(request))
