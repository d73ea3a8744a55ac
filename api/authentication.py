"""`Authorization: Api-Key <key>` for service clients (keys stored hashed)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from api.models import ServiceApiKey


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
        try:
            # get_from_key is the manager's (it checks the hash); the user comes with the next read.
            api_key = ServiceApiKey.objects.get_from_key(key)
        except ServiceApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("invalid API key") from None
        if not api_key.is_valid(key) or api_key.has_expired or api_key.revoked:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked API key")
        if not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("the key's user is inactive")
        return api_key.user, api_key

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
