from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def client_for():
    """An API client logged in as `user`: `client_for(alice).get(...)`."""
    return lambda user: (client := APIClient(), client.force_authenticate(user))[0]


@pytest.fixture
def channels_on(ws_config):
    """Turn channels on (loopback webhook receivers allowed): `channels_on(email=True, slack=True)`."""

    def apply(**channels):
        return ws_config(
            {
                "notifications": {"channels": channels, "retryBaseSeconds": 0.01, "retryMaxSeconds": 0.05},
                "webhooks": {"allowPrivateTargets": True},
            }
        )

    return apply
