"""ReDoc offline: its bundle as drf-spectacular-sidecar ships it, less the one thing it fetches
from elsewhere (the "API docs by Redocly" logo from Redocly's CDN, hard-coded in the sidebar),
which becomes an empty inline image. /redoc/'s template loads this instead of the sidecar file,
so the page makes no request off the service and no Content-Security-Policy violation."""

from __future__ import annotations

import functools

from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.views.decorators.http import require_GET

SIDECAR_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_IMAGE = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"


@functools.cache
def _bundle() -> bytes:
    path = finders.find(SIDECAR_BUNDLE)
    with open(path, encoding="utf-8") as f:
        return f.read().replace(CDN_LOGO, EMPTY_IMAGE).encode()


@require_GET
def redoc_bundle(request):
    response = HttpResponse(_bundle(), content_type="application/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=86400"
    return response
