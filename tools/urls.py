"""URLs of the tools app (included at the site root)."""

from django.urls import path

from . import views

app_name = "tools"

urlpatterns = [
    path("elks/next/<str:secret>/", views.elks_next, name="elks_next"),
    path("elks/hangup/<str:secret>/", views.elks_hangup, name="elks_hangup"),
    path("demo/orders/<str:token>/", views.demo_orders, name="demo_orders"),
    path("api/calls/", views.api_calls, name="api_calls"),
    path("api/calls/<int:pk>/", views.api_call_detail, name="api_call_detail"),
]
