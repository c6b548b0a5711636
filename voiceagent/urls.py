from django.contrib import admin
from django.urls import include, path

from voiceagent import api_export, views
from voiceagent.login_limit import rate_limited

admin.site.site_header = "Voice agent"
admin.site.site_title = "Voice agent"
admin.site.index_title = "Assistants, numbers and calls"
admin.site.login = rate_limited(admin.site.login)

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/calls/export.<str:kind>", api_export.export_calls, {}, name="api_calls_export"),
    path("", include("tools.urls")),  # 46elks callbacks, the pizza demo, /api/calls/
    path("dashboard/", include("dashboard.urls")),
    path("", include("campaigns.urls")),  # the dashboard's campaigns panel (staff)
    path("", include("insights.urls")),  # /metrics (token) and call recordings (staff)
]
