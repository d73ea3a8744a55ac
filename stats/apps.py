from django.apps import AppConfig


class StatsConfig(AppConfig):
    """Maintained counters and hourly roll-ups of work items; the statistics API reads only these."""

    name = "stats"
    default_auto_field = "django.db.models.BigAutoField"
