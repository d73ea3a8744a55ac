"""Console fixtures: a logged-in browser session per persona (Django's test client)."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture
def as_user(db):
    """`as_user(alice)`: a test client logged in as that user, checking CSRF like a browser."""

    def make(user, *, csrf: bool = False) -> Client:
        client = Client(enforce_csrf_checks=csrf)
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return make
