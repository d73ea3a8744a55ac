"""The event tests' fixtures (real RabbitMQ, names unique to the test) for the scrape test here."""

from tests.events.conftest import cleanup_queues, events_config, names  # noqa: F401
