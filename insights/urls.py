from django.urls import path

from . import views

app_name = "insights"

urlpatterns = [
    path("metrics", views.metrics_view, name="metrics"),
    path("recordings/call-<int:call_pk>.wav", views.recording_view, name="recording"),
]
