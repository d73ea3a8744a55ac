"""Task types on the create path (issue 16): what a create costs without a task type, with one
registered for another task (the check is a subquery of the queue's read), and one that takes
its task type's defaults (it reads the type and its groups).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/task_types.py

Like bench/claim_next.py (whose helpers it uses) it creates its own database
(`workstream_bench_tasktypes`, or --db), migrates it, measures, prints a Markdown table and drops
it (--keep keeps it). One thread, in-process through the services (audit chain, outbox,
distribution into a pull queue); each kind runs --rounds times of --duration seconds
(the first kind's rounds run first, before any task type exists; the other two then
alternate); the table shows each kind's median create time over the rounds and its statements.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claim_next import bench_main, print_table  # noqa: E402

KINDS = ("no task types at all", "task types exist, none for this task", "takes its task type's defaults")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="workstream_bench_tasktypes", help="database to create (dropped first)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per kind per round")
    p.add_argument("--rounds", type=int, default=3)
    return p.parse_args()


def run(args, bench_url: str, t_start: float) -> int:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection

    from directory.roles import role_group_name
    from workitems import services
    from workitems.models import Queue

    svc = get_user_model().objects.create_user("bench-svc")
    svc.groups.add(Group.objects.get_or_create(name=role_group_name("service"))[0])
    team = Group.objects.create(name="bench-team")
    queue = Queue.objects.create(name="bench-queue")
    queue.candidate_groups.set([team])
    bodies = {
        KINDS[0]: {"workflow_id": "plain", "task_name": "t", "queue": queue.name},
        KINDS[1]: {"workflow_id": "plain", "task_name": "t", "queue": queue.name},
        KINDS[2]: {"workflow_id": "claims", "task_name": "review"},
    }

    def statements(body) -> int:
        seen: list[str] = []
        with connection.execute_wrapper(lambda ex, sql, p, many, ctx: (seen.append(sql), ex(sql, p, many, ctx))[1]):
            services.work_item_create(actor=svc, data=body)
        return len([s for s in seen if not s.lstrip().upper().startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))])

    def one_round(kind: str) -> float:
        body, times = bodies[kind], []
        deadline = time.perf_counter() + args.duration
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            services.work_item_create(actor=svc, data=body)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e6

    medians: dict[str, list[float]] = {k: [] for k in KINDS}
    counts: dict[str, int] = {}

    def measure(kind: str) -> None:
        medians[kind].append(one_round(kind))
        counts.setdefault(kind, statements(bodies[kind]))

    for _ in range(args.rounds):  # before any task type exists
        measure(KINDS[0])
    services.workflow_register(
        actor=svc,
        data={
            "id": "claims",
            "tasks": [{"name": "review", "queue": queue.name, "priority": 70, "candidate_groups": [team.name]}]
            + [{"name": f"other-{i}"} for i in range(200)],
        },
    )
    for _ in range(args.rounds):  # then the other two, alternating
        measure(KINDS[1])
        measure(KINDS[2])
    rows = [
        (f"create, {kind}", f"{statistics.median(medians[kind]):.0f} µs, {counts[kind]} statements", "", "")
        for kind in KINDS
        if medians[kind]
    ]
    print_table(rows, t_start)
    return 0


def main() -> int:
    return bench_main(parse_args(), run)


if __name__ == "__main__":
    raise SystemExit(main())
