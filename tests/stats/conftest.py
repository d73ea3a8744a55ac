"""The API tests' fixtures (clients per persona, an isolated cache) for the statistics tests."""

from tests.api.conftest import admin, api, isolated_cache, jwt_client  # noqa: F401 - fixtures
