"""Fixtures of the case tests: the API clients and isolated cache of tests/api, the SDK clients
of tests/sdk, the broker fixtures of tests/events, and a case."""

from __future__ import annotations

import pytest

from tests.api.conftest import api, fast_password_hashing, isolated_cache  # noqa: F401 - fixtures
from tests.events.conftest import background, cleanup_queues, events_config, names  # noqa: F401 - fixtures
from tests.events.test_inbound import command_bus  # noqa: F401 - fixture
from tests.sdk.conftest import sleeps, worker_client, ws  # noqa: F401 - fixtures
from workitems import services


@pytest.fixture
def make_case(svc):
    """Open a case through the service layer (as the service client)."""

    def make(number: str = "C-1", **fields):
        return services.case_create(actor=svc, data={"case_number": number, **fields})

    return make
