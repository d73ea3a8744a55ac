"""Four scanner processes over the same 5,000 due items: every SLA step and escalation level
fires exactly once per item (the row lock and the counters on the row, not luck)."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from django.db.models import Count, Q

from audit.models import AuditRecord
from tests import factories
from tests.processes import run_together
from workitems import services
from workitems.models import SlaState, WorkItem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PROCESSES = 4
ITEMS = int(os.environ.get("SLA_RACE_ITEMS", "5000"))


def test_four_scanners_fire_each_level_exactly_once_per_item(svc, team_a):
    q = factories.queue("sla-race", groups=[team_a], sla=timedelta(seconds=1))
    for start in range(0, ITEMS, 1000):
        bodies = [factories.item_body(q) for _ in range(min(1000, ITEMS - start))]
        services.work_item_create_many(actor=svc, items=bodies)
    time.sleep(1.2)  # every item is past its deadline: at risk, breached, both default levels due
    outputs = run_together("tests.workitems.sla_scanner", ["200"], processes=PROCESSES, timeout=600)
    changed = [int(out.strip().splitlines()[-1]) for out in outputs]
    assert sum(changed) == ITEMS  # each item changed by exactly one scanner
    assert sum(1 for n in changed if n) >= 2, changed  # the scanners really shared the work
    counts = (
        AuditRecord.objects.filter(work_item__queue=q)
        .values("work_item_id")
        .annotate(
            at_risk=Count("id", filter=Q(action="sla_at_risk")),
            breach=Count("id", filter=Q(action="sla_breach")),
            levels=Count("id", filter=Q(action="escalate")),
        )
    )
    shapes = {(c["at_risk"], c["breach"], c["levels"]) for c in counts}
    assert len(counts) == ITEMS and shapes == {(1, 1, 2)}, shapes
    assert set(WorkItem.objects.filter(queue=q).values_list("sla_state", "sla_level", "escalation_level")) == {
        (SlaState.BREACHED, 2, 1)
    }
