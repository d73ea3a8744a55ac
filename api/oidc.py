"""Access tokens from an external OpenID Connect identity provider (README "OIDC").

`Authorization: Bearer <token>` where the token is a JWT whose `iss` is the configured
`oidc.issuer`: it is verified against the provider's JWKS (PyJWT's PyJWKClient: the key
set cached for `jwksCacheSeconds`, fetched again on an unknown `kid` at most once per
`jwksMinRefetchSeconds`), for the configured asymmetric algorithms only (never `none`,
never an HMAC, so a public key can never be used as a shared secret), with `iss`, `aud`
and `exp` required. Its claims name the local user (`usernameClaim`) and the platform
roles (`rolesClaim`, through `roleMapping`); the user is created on first sight and its
role groups (and, with `groupsClaim`, its other groups) kept as the token says, through
the directory services (audited, source "oidc"). Bearer tokens of any other issuer are
left to simplejwt (api.authentication.JWTAuthentication), API keys to their own class.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import jwt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from config import wsconfig
from directory import services
from directory.roles import ROLES, remember_groups, role_group_name, user_groups, with_groups

log = logging.getLogger(__name__)

SOURCE = "oidc"
USERNAME_MAX = 150  # django.contrib.auth's username column

_clients: dict[tuple, KeySetClient] = {}
_clients_lock = threading.Lock()


class KeySetClient(jwt.PyJWKClient):
    """PyJWKClient (the key set cached for its lifespan, refetched on an unknown kid at most once
    per cooldown) that rides out an unreachable provider: a failed fetch serves the last good key
    set again (keys the provider has since withdrawn keep working until it answers), and after a
    failure the provider is not asked again for `retry_after` seconds, so an outage neither stalls
    every request on the fetch timeout nor multiplies the load on the provider."""

    def __init__(self, uri: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(uri, **kwargs)
        self.retry_after = retry_after
        self._last_good: Any = None
        self._failed_at: float | None = None

    def fetch_data(self) -> Any:
        if self._failed_at is not None and time.monotonic() - self._failed_at < self.retry_after:
            if self._last_good is not None:
                return self._last_good
            raise jwt.PyJWKClientConnectionError(f"not retried for {self.retry_after:g} s after a failed fetch")
        try:
            try:
                data = super().fetch_data()
            except (ValueError, jwt.PyJWKClientError) as exc:  # not JSON, or not a JSON object
                if isinstance(exc, jwt.PyJWKClientConnectionError):
                    raise
                raise jwt.PyJWKClientConnectionError(f"the answer is not a JWK set: {exc}") from exc
        except jwt.PyJWKClientConnectionError as exc:
            self._failed_at = time.monotonic()
            if self._last_good is None:
                raise
            log.warning("OIDC: could not fetch the JWKS from %s (%s); using the last one fetched", self.uri, exc)
            return self._last_good
        self._failed_at = None
        self._last_good = data
        return data


def settings_in_force() -> dict[str, Any] | None:
    """The `oidc:` section when it is enabled, else None."""
    section = wsconfig.get().oidc
    return section.as_dict() if section.enabled else None  # off: no copy on every request


def jwks_client(cfg: dict[str, Any]) -> KeySetClient:
    """One key-set client per configuration (its cache lives as long as the process)."""
    key = (cfg["jwksUrl"], cfg["jwksCacheSeconds"], cfg["jwksMinRefetchSeconds"], cfg["jwksTimeoutSeconds"])
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = KeySetClient(
                cfg["jwksUrl"],
                retry_after=cfg["jwksMinRefetchSeconds"],
                cache_jwk_set=True,
                lifespan=cfg["jwksCacheSeconds"],
                cooldown_duration=cfg["jwksMinRefetchSeconds"],
                timeout=cfg["jwksTimeoutSeconds"],
            )
            _clients[key] = client
        return client


def from_issuer(token: str, issuer: str) -> bool:
    """Whether `token` is a JWT claiming to come from `issuer` (unverified: it only routes the
    token to this verifier; everything is checked below)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return False
    return isinstance(claims, dict) and claims.get("iss") == issuer


def verify(token: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """The token's claims, or AuthenticationFailed saying what is wrong with it."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise exceptions.AuthenticationFailed(f"malformed identity provider token: {exc}") from None
    alg = header.get("alg")
    if alg not in cfg["algorithms"]:
        allowed = ", ".join(cfg["algorithms"])
        raise exceptions.AuthenticationFailed(f"identity provider token signed with {alg!r}; accepted: {allowed}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise exceptions.AuthenticationFailed("identity provider token without a key id (kid)")
    try:
        jwk = jwks_client(cfg).get_signing_key(kid)
    except jwt.PyJWKClientConnectionError as exc:
        log.warning("OIDC: could not fetch the JWKS from %s: %s", cfg["jwksUrl"], exc)
        raise exceptions.AuthenticationFailed("the identity provider's signing keys could not be fetched") from None
    except (jwt.PyJWKClientError, jwt.PyJWKSetError):
        raise exceptions.AuthenticationFailed(f"identity provider token signed with an unknown key {kid!r}") from None
    try:
        return jwt.decode(
            token,
            jwk,  # a PyJWK verifies with its own algorithm only (the header's must match it)
            algorithms=[alg],
            audience=cfg["audience"],
            issuer=cfg["issuer"],
            leeway=cfg["leewaySeconds"],
            options={"require": ["exp", "iss", "aud"], "enforce_minimum_key_length": True},
        )
    except jwt.ExpiredSignatureError:
        raise exceptions.AuthenticationFailed("identity provider token has expired") from None
    except jwt.InvalidAudienceError:
        raise exceptions.AuthenticationFailed("identity provider token is not for this audience (aud)") from None
    except jwt.InvalidIssuerError:
        raise exceptions.AuthenticationFailed("identity provider token has the wrong issuer (iss)") from None
    except jwt.MissingRequiredClaimError as exc:
        raise exceptions.AuthenticationFailed(f"identity provider token lacks the {exc.claim!r} claim") from None
    except jwt.PyJWTError as exc:  # bad signature, wrong algorithm for the key, too short a key, …
        raise exceptions.AuthenticationFailed(f"invalid identity provider token: {exc}") from None


def claim(claims: dict[str, Any], path: str | None) -> Any:
    """The value at a dotted claim path (`realm_access.roles`), or None."""
    if not path:
        return None
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def claim_strings(claims: dict[str, Any], path: str | None) -> set[str]:
    """A list claim (or a space-separated string, as `scope`) as a set of strings."""
    value = claim(claims, path)
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str)}
    return set()


def mapped_roles(claims: dict[str, Any], cfg: dict[str, Any]) -> set[str]:
    """The platform roles the token's `rolesClaim` grants: a value counts through
    `roleMapping`, or when it is a role's name or its configured group's name."""
    by_name = {role: role for role in ROLES} | {role_group_name(role): role for role in ROLES}
    mapping = cfg["roleMapping"]
    roles = set()
    for value in claim_strings(claims, cfg["rolesClaim"]):
        role = mapping.get(value) or by_name.get(value)
        if role:
            roles.add(role)
    return roles


def username_of(claims: dict[str, Any], cfg: dict[str, Any]) -> str:
    name = claim(claims, cfg["usernameClaim"])
    if not isinstance(name, str) or not name.strip() or len(name) > USERNAME_MAX:
        raise exceptions.AuthenticationFailed(
            f"identity provider token's {cfg['usernameClaim']!r} claim is not a username (1-{USERNAME_MAX} characters)"
        )
    return name


def _groups(names: set[str], *, create: set[str]) -> list[Group]:
    """The groups named; those in `create` (the role groups) are created when missing."""
    found = {g.name: g for g in Group.objects.filter(name__in=names)}
    for name in sorted(create - found.keys()):
        found[name] = services.group_create(actor=None, name=name, source=SOURCE)
    return list(found.values())


def local_user(claims: dict[str, Any], cfg: dict[str, Any]):
    """The local user the claims name, created or brought in line with them; AuthenticationFailed
    for an unknown user when `createUsers` is off, or an inactive one."""
    User = get_user_model()
    username = username_of(claims, cfg)
    role_groups = {role_group_name(role) for role in ROLES}
    wanted = {role_group_name(role) for role in mapped_roles(claims, cfg)}
    mirror = bool(cfg["groupsClaim"])
    teams = claim_strings(claims, cfg["groupsClaim"]) - role_groups if mirror else set()

    user = with_groups(User.objects.filter(username=username)).first()
    if user is None:
        if not cfg["createUsers"]:
            raise exceptions.AuthenticationFailed(f"no local user {username!r} (oidc.createUsers is off)")
        new = User(username=username, is_active=True)
        new.set_unusable_password()
        for field, path in (("email", "email"), ("first_name", "given_name"), ("last_name", "family_name")):
            value = claim(claims, path)
            if isinstance(value, str):
                setattr(new, field, value[: User._meta.get_field(field).max_length])
        try:
            with transaction.atomic():
                groups = _groups(wanted | teams, create=wanted)
                return services.user_create(actor=None, user=new, groups=groups, source=SOURCE)
        except IntegrityError:  # a concurrent first request created the user (or a group) meanwhile
            user = with_groups(User.objects.filter(username=username)).first()
            if user is None:
                raise
    remember_groups(user)
    if not user.is_active:
        raise exceptions.AuthenticationFailed(f"the user {username!r} is inactive")
    current = {name for _, name in user_groups(user)}
    # The token is the authority on the role groups (and, with groupsClaim, on the others).
    target = wanted | (teams if mirror else current - role_groups)
    if target != current:
        with transaction.atomic():
            groups = _groups(target, create=wanted)
            services.user_set_groups(actor=None, user=user, groups=groups, source=SOURCE)
        user = with_groups(User.objects.filter(pk=user.pk)).first()
        remember_groups(user)
    return user


class OIDCAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` from the configured identity provider (before simplejwt,
    which takes every other Bearer token)."""

    keyword = "Bearer"

    def authenticate(self, request):
        cfg = settings_in_force()
        if cfg is None:
            return None
        scheme, _, token = authentication.get_authorization_header(request).decode("latin-1").partition(" ")
        token = token.strip()
        if scheme != self.keyword or not token or not from_issuer(token, cfg["issuer"]):
            return None
        claims = verify(token, cfg)
        return local_user(claims, cfg), claims

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class OIDCScheme(OpenApiAuthenticationExtension):
    target_class = "api.oidc.OIDCAuthentication"
    name = "oidcAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "an access token of the configured OpenID Connect provider (`oidc.issuer`), when enabled",
        }
