from django.apps import AppConfig


class WorkitemsConfig(AppConfig):
    name = "workitems"

    def ready(self):
        from django.conf import settings

        from config import wsconfig
        from workitems import inprocess, sla

        # sla.defaultPolicy is checked by the rule queues' policies follow; a bad one stops start-up.
        wsconfig.add_check(sla.config_errors, settings.WORKSTREAM)
        inprocess.start()  # `make run` only (WORKSTREAM_INPROCESS_BEAT): the scan without Celery beat
