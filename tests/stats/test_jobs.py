"""The roll-up's schedule and commands."""

from __future__ import annotations

from io import StringIO

from django.conf import settings
from django.core.management import call_command

from config.celery import app
from stats import tasks
from stats.models import Delta, QueueCounter


def test_beat_folds_the_deltas_every_rollup_seconds():
    entry = settings.CELERY_BEAT_SCHEDULE["stats-rollup"]
    assert entry == {"task": "stats.rollup", "schedule": tasks.ROLLUP_SECONDS}
    app.loader.import_default_modules()
    assert "stats.rollup" in app.tasks


def test_the_commands_fold_and_recount(make_item):
    make_item()
    assert Delta.objects.exists()
    out = StringIO()
    call_command("stats_rollup", stdout=out)
    assert "1 delta(s) folded" in out.getvalue() and not Delta.objects.exists()
    QueueCounter.objects.update(n=99)
    call_command("stats_rebuild", "--history", stdout=out)
    assert list(QueueCounter.objects.values_list("state", "n")) == [("OFFERED", 1)]
    assert tasks.stats_rollup() == 0
