"""Refuse request bodies the server would not read whole, before anything reads them.

Django reads exactly `Content-Length` bytes of a body. A body sent with
`Transfer-Encoding` (chunked) has no length, so Django would see it as empty and an
action such as `complete` would run with no result: such a request is refused (411)
instead. So is a `Content-Length` that is not a number (it would be read as 0), and a
body over `performance.maxBodyBytes` (413)."""

from __future__ import annotations

from django.http import JsonResponse

from api.problems import CONTENT_TYPE, problem_body
from config import wsconfig


def _refuse(request, kind: str, detail: str) -> JsonResponse:
    body = problem_body(kind, detail, instance=request.path)
    return JsonResponse(body, status=body["status"], content_type=CONTENT_TYPE)


class BodySizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = wsconfig.get().performance.maxBodyBytes
        coding = request.META.get("HTTP_TRANSFER_ENCODING", "").strip().lower()
        if coding and coding != "identity":
            return _refuse(
                request,
                "length-required",
                f"a body sent with Transfer-Encoding: {coding[:40]} is not read; send it with a Content-Length",
            )
        raw = (request.META.get("CONTENT_LENGTH") or "0").strip()
        if not (raw.isascii() and raw.isdigit()):
            return _refuse(request, "malformed-request", "Content-Length must be a number of bytes")
        if len(raw) > 19 or int(raw) > limit:
            shown = raw if len(raw) <= 19 else "more than 10^19"
            return _refuse(request, "payload-too-large", f"request body is {shown} bytes; the limit is {limit}")
        return self.get_response(request)
