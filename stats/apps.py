from django.apps import AppConfig


class StatsConfig(AppConfig):
    """Maintained counters and hourly roll-ups of work items; the statistics API reads only these."""

    name = "stats"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from prometheus_client import REGISTRY

        from stats.metrics import QueueCollector

        REGISTRY.register(QueueCollector())  # the queue gauges on this process's /metrics (config/observability.py)
