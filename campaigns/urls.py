from django.urls import path

from .dashboard import panel_fragment

app_name = "campaigns"
urlpatterns = [path("dashboard/campaigns/", panel_fragment, name="panel")]
