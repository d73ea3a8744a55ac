"""Personas and shared fixtures. The suite runs on real PostgreSQL (make test)."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests import factories


def pytest_configure(config):
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql":
        raise pytest.UsageError(
            f"the test suite runs on PostgreSQL, not {engine}: set DATABASE_URL "
            "(make test does: postgres://postgres@127.0.0.1:5432/workstream)"
        )


@pytest.fixture
def team_a(db):
    return factories.group("team-a")


@pytest.fixture
def team_b(db):
    return factories.group("team-b")


@pytest.fixture
def alice(team_a):
    """A worker of team A."""
    return factories.user("alice", roles=["worker"], groups=[team_a])


@pytest.fixture
def carol(team_a):
    """Another worker of team A."""
    return factories.user("carol", roles=["worker"], groups=[team_a])


@pytest.fixture
def bob(team_b):
    """A worker of another team (team B)."""
    return factories.user("bob", roles=["worker"], groups=[team_b])


@pytest.fixture
def sam(db):
    """A supervisor."""
    return factories.user("sam", roles=["supervisor"])


@pytest.fixture
def svc(db):
    """A service client (a workflow engine)."""
    return factories.user("svc", roles=["service"])


@pytest.fixture
def queue(team_a):
    """Team A's queue, pull (offer) by default."""
    return factories.queue("team-a-queue", groups=[team_a])


@pytest.fixture
def make_item(svc, queue):
    """Create an item through the service layer (as the service client)."""

    def make(**overrides):
        return factories.item(actor=svc, queue=queue, **overrides)

    return make
