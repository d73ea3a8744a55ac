from django.contrib import admin
from django.urls import include, path

from config import health

admin.site.site_header = "Workstream administration"
admin.site.site_title = "Workstream"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health.health, name="health"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("", include("django_prometheus.urls")),
]
