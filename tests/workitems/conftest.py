"""Fixtures of the work-item tests."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def api_as():
    """`api_as(user)`: an API client authenticated as `user` (server errors come back as responses)."""

    def make(user):
        client = APIClient(raise_request_exception=False)
        client.force_authenticate(user)
        return client

    return make
