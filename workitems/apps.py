from django.apps import AppConfig


class WorkitemsConfig(AppConfig):
    name = "workitems"

    def ready(self):
        from workitems import inprocess

        inprocess.start()  # `make run` only (WORKSTREAM_INPROCESS_BEAT): the scan without Celery beat
