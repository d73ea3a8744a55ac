"""POST /auth/token and /auth/token/refresh (simplejwt), documented as problem-returning."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework_simplejwt import views as jwt_views

from api.problems import ProblemException
from api.schema import PROBLEM_RESPONSES


def lockout_problem() -> ProblemException:
    seconds = int(float(settings.AXES_COOLOFF_TIME) * 3600)
    return ProblemException(
        "rate-limited",
        f"too many failed logins for this account from this address; try again in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


class TokenObtainView(jwt_views.TokenObtainPairView):
    """Username and password (checked by Django's backends, LDAP when configured) → access/refresh JWTs."""

    throttle_scope = "token"

    @extend_schema(operation_id="auth_token", responses={200: None, **PROBLEM_RESPONSES(400, 401, 429)})
    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except exceptions.AuthenticationFailed:
            # django-axes marks the request it was given (DRF's, passed on by simplejwt) when the
            # username/address pair is locked out; say so instead of "wrong password".
            if getattr(request, "axes_locked_out", False) or getattr(request._request, "axes_locked_out", False):
                raise lockout_problem() from None
            raise


class TokenRefreshView(jwt_views.TokenRefreshView):
    @extend_schema(operation_id="auth_token_refresh", responses={200: None, **PROBLEM_RESPONSES(400, 401, 429)})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)
