"""`features.restApi`: off means off. Every route under /api/v1/ (and the OpenAPI document and
its viewers) answers 404 with a problem naming the toggle; health, metrics and the admin stay."""

from __future__ import annotations

from django.http import JsonResponse

from api.problems import CONTENT_TYPE, problem_body
from config import wsconfig

REST_PREFIXES = ("/api/", "/openapi.json", "/swagger/", "/redoc/")


class RestApiToggleMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(REST_PREFIXES) and not wsconfig.get().features.restApi:
            body = problem_body(
                "feature-disabled",
                "the REST API is switched off (features.restApi is off in the configuration)",
                instance=request.path,
                status=404,
                toggle="features.restApi",
            )
            return JsonResponse(body, status=404, content_type=CONTENT_TYPE)
        return self.get_response(request)
