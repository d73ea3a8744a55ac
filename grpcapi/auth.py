"""Who calls: the project's REST authentication classes (settings REST_FRAMEWORK
DEFAULT_AUTHENTICATION_CLASSES: OIDC, JWT, API key), run on the call's metadata as if it were
the Authorization header. Sessions have no meaning here and are left out.

  authorization: Bearer <jwt>      a Workstream (or configured OIDC) access token
  authorization: Api-Key <key>     a service client's key
  x-api-key: <key>                 the same key, in the header gRPC clients often use
"""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.settings import api_settings

from api.authentication import ApiKeyAuthentication


def _authenticators():
    return [cls() for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES if not issubclass(cls, SessionAuthentication)]


def drf_request(metadata: dict[str, str], *, path: str) -> Request:
    """A DRF request carrying the call's metadata as headers (what the idempotency layer and the
    throttles read) and its credentials: `authorization`, else `x-api-key` as `Api-Key <key>`."""
    http = HttpRequest()
    http.method = "POST"
    http.path = http.path_info = path
    for name, value in metadata.items():  # as an HTTP request's headers (idempotency-key, x-request-id…)
        http.META["HTTP_" + name.upper().replace("-", "_")] = value
    header = metadata.get("authorization")
    if header is None and metadata.get("x-api-key") is not None:
        header = f"{ApiKeyAuthentication.keyword} {metadata['x-api-key']}"
    if header is not None:
        http.META["HTTP_AUTHORIZATION"] = header
    return Request(http, authenticators=_authenticators())


def authenticate(request: Request):
    """The authenticated user, or AuthenticationFailed / NotAuthenticated (UNAUTHENTICATED)."""
    user = request.user  # runs the authenticators; a bad credential raises AuthenticationFailed
    if not (user and user.is_authenticated):
        raise exceptions.NotAuthenticated(
            "send `authorization: Bearer <token>`, `authorization: Api-Key <key>` or `x-api-key: <key>`"
        )
    request._request.user = user
    return user
