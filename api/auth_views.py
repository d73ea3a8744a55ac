"""POST /auth/token and /auth/token/refresh (simplejwt), documented as problem-returning."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework_simplejwt import views as jwt_views

from api.schema import PROBLEM_RESPONSES


class TokenObtainView(jwt_views.TokenObtainPairView):
    """Username and password (checked by Django's backends, LDAP when configured) → access/refresh JWTs."""

    throttle_scope = "token"

    @extend_schema(operation_id="auth_token", responses={200: None, **PROBLEM_RESPONSES(400, 401, 429)})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class TokenRefreshView(jwt_views.TokenRefreshView):
    @extend_schema(operation_id="auth_token_refresh", responses={200: None, **PROBLEM_RESPONSES(400, 401, 429)})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)
