"""Console fixtures: a logged-in browser session per persona (Django's test client)."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.api.conftest import isolated_cache  # noqa: F401 - a fixture


@pytest.fixture
def as_user(db):
    """`as_user(alice)`: a test client logged in as that user, checking CSRF like a browser."""

    def make(user, *, csrf: bool = False) -> Client:
        client = Client(enforce_csrf_checks=csrf)
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return make


@pytest.fixture(autouse=True)
def _own_cache_keys(isolated_cache):  # noqa: F811 - the imported fixture, asked for by name
    """The console shares figures in the cache (console.figures): a prefix of this test's own,
    so that no other test (or run sharing the Redis server) reads its queues' figures."""
