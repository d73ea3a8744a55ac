"""Celery jobs of the statistics."""

from __future__ import annotations

from celery import shared_task

from stats import rollup

# How often beat folds the deltas (config/settings.py CELERY_BEAT_SCHEDULE, and the in-process
# beat of `make run`): readers add what is pending, so the period bounds their cost, not their
# accuracy.
ROLLUP_SECONDS = 5.0


@shared_task(name="stats.rollup")
def stats_rollup() -> int:
    """Fold the pending deltas into the counters (beat, every ROLLUP_SECONDS); returns how many."""
    return rollup.rollup()
