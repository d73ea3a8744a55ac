"""POST /auth/token and /auth/token/refresh (simplejwt), documented as problem-returning."""

from __future__ import annotations

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework_simplejwt import views as jwt_views
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from api.problems import ProblemException
from api.schema import PROBLEM_RESPONSES
from api.throttling import TokenRateThrottle


def lockout_problem() -> ProblemException:
    seconds = int(float(settings.AXES_COOLOFF_TIME) * 3600)
    return ProblemException(
        "rate-limited",
        f"too many failed logins for this account from this address; try again in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


class TokenObtainView(jwt_views.TokenObtainPairView):
    """Username and password (checked by Django's backends, LDAP when configured) → access/refresh JWTs.

    Throttled per address and per username before the password is checked (api/throttling.py), on
    top of django-axes' lockout of a username/address pair after repeated failures.
    """

    throttle_classes = [TokenRateThrottle]

    @extend_schema(operation_id="auth_token", responses={200: None, **PROBLEM_RESPONSES(400, 401, 429)})
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except exceptions.AuthenticationFailed:
            # django-axes marks the request it was given (DRF's, passed on by simplejwt) when the
            # username/address pair is locked out; say so instead of "wrong password".
            if getattr(request, "axes_locked_out", False) or getattr(request._request, "axes_locked_out", False):
                raise lockout_problem() from None
            raise
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        # A token is a login: tell axes, as django.contrib.auth.login() would, so that
        # AXES_RESET_ON_SUCCESS clears this pair's failures (simplejwt never calls login(), and
        # without this nine old failures plus one new one lock the account out). The
        # user_logged_in signal itself is not sent: it would also write last_login, which
        # SIMPLE_JWT's UPDATE_LAST_LOGIN leaves off.
        AxesProxyHandler.user_logged_in(sender=type(self), request=request, user=serializer.user)
        return Response(serializer.validated_data, status=status.HTTP_200_OK)


class TokenRefreshView(jwt_views.TokenRefreshView):
    @extend_schema(operation_id="auth_token_refresh", responses={200: None, **PROBLEM_RESPONSES(400, 401, 429)})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)
