"""Maintained statistics of work items: what the statistics API and the dashboards read.

Every change to a work item's (queue, state, SLA state, assignee) writes rows to `Delta`
from a database trigger on workitems_workitem (stats/triggers.py), in the change's own
transaction and with no extra round trip. Deltas are insert-only, so concurrent changes
never wait on a shared counter row. The roll-up (stats/rollup.py, a beat job) folds them
into the counter and hourly tables below and deletes them; readers add the pending deltas
to the rolled-up rows in one statement, so figures are exact between roll-ups too.

No foreign keys: a delta is written for every change of the hot table and must not take
locks on queue or user rows; ids are those of workitems_workitem's queue and assignee.
"""

from __future__ import annotations

from django.db import models


class Delta(models.Model):
    """One side of one change: -1 for the key an open item left, +1 (or 0) for the key it
    entered, with the events of the change (created, completed, …) at `at`."""

    id = models.BigAutoField(primary_key=True)
    queue_id = models.BigIntegerField()
    assignee_id = models.BigIntegerField(null=True)
    state = models.CharField(max_length=20)
    sla_state = models.CharField(max_length=10)
    item_created_at = models.DateTimeField(null=True)  # for the open items' age distribution
    n = models.SmallIntegerField(help_text="change of the open count under this key: -1, 0 or +1")
    at = models.DateTimeField(null=True, help_text="when the events happened (their hourly bucket)")
    created = models.SmallIntegerField(default=0)
    completed = models.SmallIntegerField(default=0)
    cancelled = models.SmallIntegerField(default=0)
    failed = models.SmallIntegerField(default=0)
    breached = models.SmallIntegerField(default=0)
    with_due = models.SmallIntegerField(default=0, help_text="completed with a deadline")
    on_time = models.SmallIntegerField(default=0, help_text="completed by its deadline")
    wait_n = models.SmallIntegerField(default=0)
    wait_s = models.FloatField(default=0)
    handle_n = models.SmallIntegerField(default=0)
    handle_s = models.FloatField(default=0)

    def __str__(self) -> str:
        return f"delta {self.n:+d} queue {self.queue_id} {self.state}"


class QueueCounter(models.Model):
    """Open items of a queue in one (state, SLA state), as of the last roll-up."""

    queue_id = models.BigIntegerField()
    state = models.CharField(max_length=20)
    sla_state = models.CharField(max_length=10)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue_id", "state", "sla_state"], name="stats_queuecounter_key")
        ]

    def __str__(self) -> str:
        return f"queue {self.queue_id} {self.state}/{self.sla_state}: {self.n}"


class UserCounter(models.Model):
    """Open items a user holds in a queue, per state, as of the last roll-up."""

    queue_id = models.BigIntegerField()
    user_id = models.BigIntegerField()
    state = models.CharField(max_length=20)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue_id", "user_id", "state"], name="stats_usercounter_key")]

    def __str__(self) -> str:
        return f"user {self.user_id} in queue {self.queue_id} {self.state}: {self.n}"


class OpenAge(models.Model):
    """Open items of a queue by the hour they were created (the age distribution)."""

    queue_id = models.BigIntegerField()
    hour = models.DateTimeField()
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue_id", "hour"], name="stats_openage_key")]

    def __str__(self) -> str:
        return f"queue {self.queue_id} created {self.hour:%Y-%m-%d %H}h: {self.n} open"


class QueueHour(models.Model):
    """What happened in a queue in one hour: the window figures and the time series."""

    queue_id = models.BigIntegerField()
    hour = models.DateTimeField()
    created = models.BigIntegerField(default=0)
    completed = models.BigIntegerField(default=0)
    cancelled = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    breached = models.BigIntegerField(default=0)
    with_due = models.BigIntegerField(default=0)
    on_time = models.BigIntegerField(default=0)
    wait_n = models.BigIntegerField(default=0)
    wait_s = models.FloatField(default=0)
    handle_n = models.BigIntegerField(default=0)
    handle_s = models.FloatField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue_id", "hour"], name="stats_queuehour_key")]

    def __str__(self) -> str:
        return f"queue {self.queue_id} at {self.hour:%Y-%m-%d %H}h"


class UserHour(models.Model):
    """What a user completed in a queue in one hour, and the handling time it took."""

    queue_id = models.BigIntegerField()
    user_id = models.BigIntegerField()
    hour = models.DateTimeField()
    completed = models.BigIntegerField(default=0)
    handle_n = models.BigIntegerField(default=0)
    handle_s = models.FloatField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue_id", "user_id", "hour"], name="stats_userhour_key")]
        indexes = [models.Index(fields=["user_id", "hour"], name="stats_userhour_user_idx")]

    def __str__(self) -> str:
        return f"user {self.user_id} in queue {self.queue_id} at {self.hour:%Y-%m-%d %H}h"
