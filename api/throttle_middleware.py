"""`rateLimits.anonymousPerIp`: the per-address limit on API requests that do not authenticate.

A Django middleware, because DRF checks its throttles after authentication and permissions: a
request with no or bad credentials is refused (401) before any DRF throttle sees it. The counting
is api/throttling.py's `hit`.
"""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.utils.functional import SimpleLazyObject, empty

from api.problems import CONTENT_TYPE, problem_body
from api.throttling import hit, throttle_ip
from config import wsconfig

API_PREFIX = "/api/"


def _presents_credentials(request) -> bool:
    """Whether the request could authenticate: an Authorization header, a session cookie, or a
    user forced by DRF's test client (which DRF's Request reads from the same attribute)."""
    return bool(
        request.META.get("HTTP_AUTHORIZATION")
        or request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        or getattr(request, "_force_auth_user", None) is not None
    )


def _authenticated(request) -> bool:
    # DRF's Request sets the authenticated user (or AnonymousUser) on the Django request; a user
    # still lazy (AuthenticationMiddleware's) means no DRF view authenticated this request.
    user = request.__dict__.get("user")
    if user is None or (isinstance(user, SimpleLazyObject) and user._wrapped is empty):
        return False
    return bool(user.is_authenticated)


def too_many(request, wait: int, detail: str) -> JsonResponse:
    body = problem_body("rate-limited", detail, instance=request.path)
    resp = JsonResponse(body, status=429, content_type=CONTENT_TYPE)
    resp["Retry-After"] = str(wait)
    return resp


class AnonymousRateMiddleware:
    """`rateLimits.anonymousPerIp` on the API requests that do not authenticate (see the module)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        name = f"anon:{throttle_ip(request)}"
        rate = wsconfig.get().rateLimits.anonymousPerIp
        if not _presents_credentials(request):
            wait = hit(name, rate)
            if wait is not None:
                return self._refused(request, wait)
            return self.get_response(request)
        response = self.get_response(request)
        if not _authenticated(request):
            wait = hit(name, rate)
            # A refused authentication changed nothing, so its 401 can become the 429 it is now.
            if wait is not None and response.status_code == 401:
                return self._refused(request, wait)
        return response

    @staticmethod
    def _refused(request, wait: int) -> JsonResponse:
        return too_many(request, wait, f"too many unauthenticated requests from this address; try again in {wait} s")
