from django.contrib import admin
from django.urls import path

from voiceagent import views

admin.site.site_header = "Voice agent"
admin.site.site_title = "Voice agent"
admin.site.index_title = "Assistants, numbers and calls"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
