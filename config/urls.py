from csp.decorators import csp_update
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from config import health, observability
from console.apidocs import redoc_bundle
from console.dashboard import root

# Swagger UI's and ReDoc's bundles inject <style> elements (React, styled-components) and ReDoc
# runs its search in a blob: worker: those two pages alone relax the Content-Security-Policy for
# that; scripts stay 'self' only. ReDoc's page is the project's own template, without the web
# fonts the stock one loads from a CDN, and Swagger UI's initialiser is a served script (the
# split view), not an inline one.
API_VIEWER_CSP = {"style-src": ["'unsafe-inline'"], "worker-src": ["'self'", "blob:"]}

admin.site.site_header = "Workstream administration"
admin.site.site_title = "Workstream"

urlpatterns = [
    path("api/v1/", include("api.urls")),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path(
        "swagger/", csp_update(API_VIEWER_CSP)(SpectacularSwaggerSplitView.as_view(url_name="openapi")), name="swagger"
    ),
    path(
        "redoc/",
        csp_update(API_VIEWER_CSP)(
            SpectacularRedocView.as_view(url_name="openapi", template_name="console/redoc.html")
        ),
        name="redoc",
    ),
    path("redoc/redoc.standalone.js", redoc_bundle, name="redoc-bundle"),
    path("admin/", admin.site.urls),
    path("health", health.health, name="health"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", observability.metrics_view, name="prometheus-django-metrics"),
    path("console/", include("console.urls")),
    path("", root, name="root"),
    # browsers ask for /favicon.ico on every page that names none (the admin, error pages)
    path("favicon.ico", RedirectView.as_view(url=static("console/favicon.svg"), permanent=True)),
]

handler400 = "api.problems.handler400"
handler403 = "api.problems.handler403"
handler404 = "api.problems.handler404"
handler500 = "api.problems.handler500"
