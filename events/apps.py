from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"

    def ready(self):
        from config import tracing
        from events import metrics

        metrics.register_collector()
        # Every process loads this app (web, Celery, the relay, the consumers), and ready() runs
        # before the web process loads its middleware: where tracing is turned on (OTEL_*).
        tracing.setup()
