"""Refuse request bodies the server would not read whole, before anything reads them.

Django reads exactly `Content-Length` bytes of a body. A body sent with
`Transfer-Encoding` (chunked) has no length, so Django would see it as empty and an
action such as `complete` would run with no result: such a request is refused (411)
instead. So is a `Content-Length` that is not a number (it would be read as 0), and a
body over `performance.maxBodyBytes` (413).

`CharsetGuard` sits in front of Django (config/wsgi.py): a `charset` that names a codec
but not a text encoding (`bz2_codec`, `base64_codec`) made Django's request constructor
raise LookupError while decoding the query string, before any middleware runs."""

from __future__ import annotations

import codecs
import json

from django.http import JsonResponse
from django.utils.http import parse_header_parameters

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


def _not_a_text_encoding(charset: str) -> bool:
    try:
        codecs.lookup(charset)
    except LookupError:
        return False  # unknown: Django ignores it and reads UTF-8
    try:
        "".encode(charset)
    except LookupError:
        return True
    return False


class CharsetGuard:
    """A WSGI middleware: 415 for a Content-Type whose charset is not a text encoding."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        charset = parse_header_parameters(environ.get("CONTENT_TYPE", ""))[1].get("charset", "")
        if charset and _not_a_text_encoding(charset):
            body = problem_body(
                "unsupported-media-type",
                f"charset {charset[:40]!r} is not a text encoding; send UTF-8",
                instance=environ.get("PATH_INFO", ""),
            )
            data = json.dumps(body).encode()
            start_response(
                "415 Unsupported Media Type", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(data)))]
            )
            return [data]
        return self.app(environ, start_response)
