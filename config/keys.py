"""Signing keys the service refuses to run with (config/settings.py, README "Security").

Outside DEBUG and the test suite, start-up stops with ImproperlyConfigured naming the
variable when SECRET_KEY is missing, or SECRET_KEY or JWT_SIGNING_KEY is a published key or
too weak to sign with. The rules are Django's own deploy check (`check --deploy`,
security.W009): at least 50 characters, at least 5 distinct ones, not made by
`startproject` (`django-insecure-…`), plus the keys this repository has ever shipped.
"""

from __future__ import annotations

# `make run` and the test suite sign with this; nothing else may.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"  # noqa: S105 (published on purpose)

# Every key this repository has published: a deployment still using one is signing with a
# key anyone can read.
KNOWN_KEYS = frozenset(
    {
        DEV_SECRET_KEY,
        "compose-local-only-insecure-secret-key",  # docker-compose.yml's default until it required one
    }
)
MIN_LENGTH = 50
MIN_UNIQUE_CHARACTERS = 5
INSECURE_PREFIX = "django-insecure-"


# What the error messages tell operators to run: a key that passes `weakness`.
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"


def weakness(value: str) -> str:
    """Why `value` may not sign anything, or "" when it may."""
    if not value:
        return "is not set"
    if value in KNOWN_KEYS:
        return "is a published key (one this repository ships)"
    if value.startswith(INSECURE_PREFIX):
        return f"is a key made by django-admin startproject ({INSECURE_PREFIX}…)"
    if len(value) < MIN_LENGTH:
        return f"is too short ({len(value)} characters, at least {MIN_LENGTH})"
    if len(set(value)) < MIN_UNIQUE_CHARACTERS:
        return f"has too few distinct characters ({len(set(value))}, at least {MIN_UNIQUE_CHARACTERS})"
    return ""


def refusal(name: str, value: str) -> str:
    """The start-up error for variable `name`, or "" when its value is fit to sign with."""
    why = weakness(value)
    if not why:
        return ""
    return (
        f"{name} {why}: outside DEBUG the service refuses to sign sessions and tokens with it. "
        f"Set {name} (or {name}_FILE, a file holding it) to a random secret, e.g. the output of {GENERATE_HINT}"
    )


# METRICS_TOKEN, the bearer token Prometheus scrapes /metrics with.
MIN_TOKEN_LENGTH = 32


def token_refusal(name: str, value: str) -> str:
    """The start-up error for a bearer token that is set but guessable, or ""."""
    if not value or len(value) >= MIN_TOKEN_LENGTH:
        return ""
    return (
        f"{name} is too short ({len(value)} characters, at least {MIN_TOKEN_LENGTH}): set it to a random "
        "token, e.g. the output of python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )
