"""`Authorization: Api-Key <key>` for service clients (keys stored hashed), and simplejwt's
JWT authentication and refresh with the token's user id checked before it is looked up."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme, TokenRefreshSerializerExtension
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework_simplejwt import authentication as jwt_authentication
from rest_framework_simplejwt import serializers as jwt_serializers
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

from api.models import ServiceApiKey
from config import sqlcache
from directory.roles import remember_groups, with_groups

MAX_USER_ID = 2**63 - 1  # the largest primary key PostgreSQL's bigint holds


def token_user_id(payload) -> int:
    """The user id a validly signed token names, as the integer primary key it must be.

    simplejwt looks the claim up as it is: a string, a float, a list or a number past
    bigint (which a token signed with a leaked key may carry) ended in a 500."""
    value = payload.get(jwt_settings.USER_ID_CLAIM)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)  # simplejwt writes non-integer ids as strings; ours are integers
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_USER_ID:
        raise InvalidToken(f"the token's {jwt_settings.USER_ID_CLAIM} claim is not a user id (a positive integer)")
    return value


class JWTAuthentication(jwt_authentication.JWTAuthentication):
    """`Authorization: Bearer <access>`; a token whose user id is no integer is a 401."""

    def get_user(self, validated_token):
        """simplejwt's lookup (user, active, revoked by a password change), with the user's
        groups read in the same statement (directory.roles.with_groups)."""
        user = self._user_with_groups(token_user_id(validated_token))
        if user is None:
            raise exceptions.AuthenticationFailed("User not found", code="user_not_found")
        if jwt_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise exceptions.AuthenticationFailed("User is inactive", code="user_inactive")
        if jwt_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            jwt_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise exceptions.AuthenticationFailed("The user's password has been changed.", code="password_changed")
        remember_groups(user)
        return user

    def _user_with_groups(self, user_id: int):
        """The user and its groups in one statement, compiled once per process (config.sqlcache:
        building and compiling it through the ORM cost three times its round trip on every call)."""
        users = self.user_model.objects
        field = jwt_settings.USER_ID_FIELD
        template = sqlcache.template(
            ("jwt-user", field), lambda stand: with_groups(users.filter(**{field: stand.value("user_id")}))
        )
        if template is None:
            return with_groups(users.filter(**{field: user_id})).first()
        found = template.fetch({"user_id": user_id})
        return found[0] if found else None


class TokenRefreshSerializer(jwt_serializers.TokenRefreshSerializer):
    """POST /auth/token/refresh: the refresh token's user id is checked, and a user who no
    longer exists is a 401 (simplejwt's lookup raised DoesNotExist, a 500)."""

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])
        user_id = token_user_id(refresh.payload)
        if not get_user_model().objects.filter(**{jwt_settings.USER_ID_FIELD: user_id}).exists():
            raise exceptions.AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account")
        return super().validate(attrs)


class JWTScheme(SimpleJWTScheme):
    """The OpenAPI document describes these as simplejwt's own (`jwtAuth`, the refresh body)."""

    target_class = "api.authentication.JWTAuthentication"


class TokenRefreshSchema(TokenRefreshSerializerExtension):
    target_class = "api.authentication.TokenRefreshSerializer"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, key = header.partition(" ")
        if scheme != self.keyword:
            return None
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("empty API key")
        api_key = self._key_with_user(key.partition(".")[0])
        if api_key is None:
            raise exceptions.AuthenticationFailed("invalid API key")
        remember_groups(api_key.user, carrier=api_key)
        if not api_key.is_valid(key) or api_key.has_expired or api_key.revoked:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked API key")
        if not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("the key's user is inactive")
        return api_key.user, api_key

    @staticmethod
    def _key_with_user(prefix: str):
        """One statement: the usable key by its prefix (as the manager's get_from_key), its user
        and the user's groups; the hash is checked by the caller. Compiled once per process
        (config.sqlcache), as the JWT user's read."""

        def keys(prefix):
            usable = ServiceApiKey.objects.get_usable_keys().select_related("user")
            return with_groups(usable, "user_id").filter(prefix=prefix).order_by("pk")[:1]

        template = sqlcache.template(("api-key",), lambda stand: keys(stand.text("prefix")))
        found = keys(prefix) if template is None else template.fetch({"prefix": prefix})
        return next(iter(found), None)

    def authenticate_header(self, request):
        return self.keyword


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>` (service clients)",
        }
