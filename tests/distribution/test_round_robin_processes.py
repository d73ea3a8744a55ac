"""Round robin is fair across server processes: its cursor lives in the database."""

from __future__ import annotations

import json
import os
import time
from collections import Counter

import pytest

from distribution.models import RoundRobinCursor
from tests import factories
from tests.processes import run_together
from workitems.models import State, WorkItem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PROCESSES = 4
ITEMS = int(os.environ.get("DIST_RR_ITEMS", "3000"))  # smaller for a quick local run
CHUNK = 5  # items per create transaction: many lock hand-overs between the processes


def test_round_robin_from_four_processes_gives_each_user_a_third(svc, team_a):
    q = factories.queue("rr-procs", groups=[team_a], strategy="round_robin")
    users = [factories.user(f"rr{i}", roles=["worker"], groups=[team_a]) for i in range(3)]
    per_process = ITEMS // PROCESSES
    t0 = time.perf_counter()
    outputs = [
        json.loads(out.strip().splitlines()[-1])
        for out in run_together(
            "tests.distribution.rr_worker", [q.name, svc.username, str(per_process), str(CHUNK)], processes=PROCESSES
        )
    ]
    elapsed = time.perf_counter() - t0
    print(f"\n{PROCESSES} processes created {ITEMS} round-robin items in {elapsed:.1f}s")

    made = [row for out in outputs for row in out]
    assert len(made) == ITEMS and all(len(out) == per_process for out in outputs)
    # every process got turns for several users (they really interleaved on the one cursor)
    assert all(len({assignee for _, assignee in out}) == 3 for out in outputs)
    per_user = Counter(WorkItem.objects.filter(queue=q, state=State.ASSIGNED).values_list("assignee_id", flat=True))
    assert set(per_user) == {u.pk for u in users}
    assert all(abs(n - ITEMS // 3) <= 1 for n in per_user.values()), per_user
    # stronger: in commit order (ids are drawn while the cursor row is locked) the turns
    # follow u0, u1, u2, u0, … without a repeat or a skip
    order = list(WorkItem.objects.filter(queue=q).order_by("id").values_list("assignee_id", flat=True))
    ids = sorted(u.pk for u in users)
    assert order == [ids[i % 3] for i in range(ITEMS)]
    assert RoundRobinCursor.objects.get(queue=q).last_user_id == order[-1]
