"""Refuse oversized request bodies before anything reads them."""

from __future__ import annotations

from django.http import JsonResponse

from api.problems import CONTENT_TYPE, problem_body
from config import wsconfig


class BodySizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = wsconfig.get().performance.maxBodyBytes
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            body = problem_body(
                "payload-too-large", f"request body is {length} bytes; the limit is {limit}", instance=request.path
            )
            return JsonResponse(body, status=413, content_type=CONTENT_TYPE)
        return self.get_response(request)
