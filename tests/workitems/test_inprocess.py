"""`make run`'s in-process beat: with no Celery beat, the SLA scan and the reservation expiry
still run on their periods, so an overdue item is escalated with no manual step."""

from __future__ import annotations

from datetime import timedelta

import pytest

from notifications.models import Notification
from tests import factories
from workitems import inprocess
from workitems.models import SlaState, WorkItem


def test_it_runs_only_when_asked_and_in_the_serving_process(monkeypatch):
    monkeypatch.delenv("WORKSTREAM_INPROCESS_BEAT", raising=False)
    assert not inprocess.enabled()
    monkeypatch.setenv("WORKSTREAM_INPROCESS_BEAT", "true")
    monkeypatch.setenv("RUN_MAIN", "true")
    assert inprocess.enabled()
    monkeypatch.delenv("RUN_MAIN")
    assert inprocess.enabled()  # no autoreloader (runserver --noreload): this process serves
    monkeypatch.setenv("RUN_MAIN", "false")
    assert not inprocess.enabled()  # the autoreloader's watcher process


@pytest.mark.django_db(transaction=True)  # the notifier sends outside any transaction
def test_due_jobs_run_on_their_periods_and_escalate_an_overdue_item(svc, sam, team_a, ws_config):
    ws_config(
        {
            "sla": {"scanSeconds": 5},
            "capacity": {"checkSeconds": 5},
            "notifications": {"pollSeconds": 5, "summary": {"checkSeconds": 5}},
        }
    )
    q = factories.queue("inproc", groups=[team_a], sla=timedelta(seconds=1))
    item = factories.item(actor=svc, queue=q)
    WorkItem.objects.filter(pk=item.pk).update(
        due_at=item.created_at - timedelta(minutes=1),
        sla_started_at=item.created_at - timedelta(minutes=2),
        sla_next_at=item.created_at - timedelta(minutes=1),
    )
    last: dict[str, float] = {}
    every = [
        "sla_scan",
        "expire_reservations",
        "notify",
        "capacity_check",
        "daily_summary",
        "stats_rollup",
        "role_grants",
    ]
    assert inprocess.run_due_jobs(last, now=100.0) == every
    item.refresh_from_db()
    assert item.sla_state == SlaState.BREACHED and item.sla_level == 2
    # and somebody is told: the breach reaches the supervisors in-app
    assert Notification.objects.filter(work_item_id=item.pk, recipient=sam).exists()
    assert inprocess.run_due_jobs(last, now=103.0) == []  # neither period has passed
    assert inprocess.run_due_jobs(last, now=111.0) == every[:-1]  # the role grants' minute has not passed
