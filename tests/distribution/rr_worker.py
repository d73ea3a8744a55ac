"""One OS process of the round-robin fairness test (tests/distribution/test_round_robin_processes.py).

Run as `python -m tests.distribution.rr_worker <queue> <creator> <count> <chunk>` with
DATABASE_URL pointing at the test database. It sets Django up, prints `ready`, waits
for a line on stdin (so all processes start together), then creates `count` items in
`queue` through `work_item_create_many`, `chunk` items per transaction, and prints a
JSON list of `[item id, assignee id]`.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    queue_name, creator_name, count, chunk = argv[0], argv[1], int(argv[2]), int(argv[3])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from workitems import services

    creator = get_user_model().objects.get(username=creator_name)
    print("ready", flush=True)
    sys.stdin.readline()
    made: list[list[int]] = []
    n = 0
    while n < count:
        k = min(chunk, count - n)
        bodies = [
            {"workflow_id": "rr", "run_id": f"{os.getpid()}-{n + i}", "task_name": "t", "queue": queue_name}
            for i in range(k)
        ]
        made.extend([it.pk, it.assignee_id] for it in services.work_item_create_many(actor=creator, items=bodies))
        n += k
    connection.close()
    print(json.dumps(made), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
