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


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Personas are made with passwords; the production hasher (PBKDF2, ~0.4 s a user)
    would dominate the suite's time. The defaults stay listed, so stored hashes still verify."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]


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


@pytest.fixture
def ada(db):
    """An admin."""
    return factories.user("ada", roles=["admin"])


@pytest.fixture
def ws_config(tmp_path):
    """Put another configuration in force for one test: `ws_config({"features": {...}})`.

    The overrides are written to a file and loaded as start-up loads one (so they are
    validated too); the configuration from settings is back in force after the test.
    """
    import yaml

    from config import wsconfig

    def apply(overrides: dict):
        path = tmp_path / "workstream-test.yaml"
        path.write_text(yaml.safe_dump(overrides))
        cfg = wsconfig.load(path)
        wsconfig.override(cfg)
        return cfg

    yield apply
    wsconfig.override(None)
