"""Fixtures of the API tests: clients per persona, an isolated cache, configuration overrides.

Personas come from tests/conftest.py (alice and carol: workers of team A; bob: a worker
of team B; sam: a supervisor; svc: a service client; `queue`: team A's queue). `admin`
is defined here.
"""

from __future__ import annotations

import uuid

import pytest
import yaml
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from config import wsconfig
from tests import factories


@pytest.fixture(autouse=True)
def isolated_cache(settings):
    """A cache key prefix of this test's own.

    The cache is the Redis server that every test run on this machine shares, and the
    throttle keys are `throttle:user:<pk>`: without a prefix of its own a test would count
    requests of other runs whose users have the same primary keys, and leave its own
    behind. (django-axes keeps the cache object it got at start-up, so this does not
    isolate axes: tests of the lockout use usernames of their own.)
    """
    caches = {name: dict(conf) for name, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"apitest-{uuid.uuid4().hex}"
    settings.CACHES = caches
    yield


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Personas are made with passwords; the production hasher costs ~0.25 s per user."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin(db):
    """An admin."""
    return factories.user("ada", roles=["admin"])


@pytest.fixture
def api():
    """`api(user)`: an APIClient authenticated as `user` (force_authenticate); `api(None)`: anonymous."""

    def make(user=None) -> APIClient:
        client = APIClient(raise_request_exception=False)  # a 500 is a response to assert on
        if user is not None:
            client.force_authenticate(user)
        return client

    return make


def bearer(user) -> str:
    """A real access JWT for `user` (verified by the real authentication class)."""
    return f"Bearer {RefreshToken.for_user(user).access_token}"


@pytest.fixture
def jwt_client():
    """`jwt_client(user)`: an APIClient that sends a real `Authorization: Bearer <JWT>`."""

    def make(user) -> APIClient:
        client = APIClient(raise_request_exception=False)
        client.credentials(HTTP_AUTHORIZATION=bearer(user))
        return client

    return make


@pytest.fixture
def api_config(tmp_path):
    """`api_config({...})`: put a configuration with these overrides in force for one test.

    Written to a file and loaded as start-up loads one (so it is validated); the
    configuration from settings is back in force afterwards.
    """

    def apply(overrides: dict):
        path = tmp_path / f"workstream-{uuid.uuid4().hex}.yaml"
        path.write_text(yaml.safe_dump(overrides))
        cfg = wsconfig.load(path)
        wsconfig.override(cfg)
        return cfg

    yield apply
    wsconfig.override(None)
