"""Four scanner processes over the same 5,000 due items: every SLA step and escalation level
fires exactly once per item (the row lock and the counters on the row, not luck)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import Count, Q

from audit.models import AuditRecord
from tests import factories
from tests.distribution.test_round_robin_processes import this_test_database_url
from workitems import services
from workitems.models import SlaState, WorkItem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
ITEMS = int(os.environ.get("SLA_RACE_ITEMS", "5000"))


def test_four_scanners_fire_each_level_exactly_once_per_item(svc, team_a):
    q = factories.queue("sla-race", groups=[team_a], sla=timedelta(seconds=1))
    for start in range(0, ITEMS, 1000):
        bodies = [factories.item_body(q) for _ in range(min(1000, ITEMS - start))]
        services.work_item_create_many(actor=svc, items=bodies)
    time.sleep(1.2)  # every item is past its deadline: at risk, breached, both default levels due
    env = {**os.environ, "DATABASE_URL": this_test_database_url(), "DB_CONN_MAX_AGE": "0", "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.workitems.sla_scanner", "200"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for p in procs:
            line = p.stdout.readline()
            assert line.strip() == "ready", f"scanner did not start: {line!r} {p.stderr.read()[-3000:]}"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        changed = []
        for p in procs:
            out, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-3000:]
            changed.append(int(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
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
