"""One OS process of the racing counters test (tests/stats/test_counters.py).

Run as `python -m tests.stats.racer <queue,queue> <steps>` with DATABASE_URL pointing at the
test database: sets Django up, prints `ready`, waits for a line on stdin, then fires `steps`
random commands (and roll-ups) through the service layer at the newest items, which the
other processes fire at too, and prints one outcome per line.
"""

from __future__ import annotations

import os
import random
import sys


def main(argv: list[str]) -> int:
    queues, steps = argv[0].split(","), int(argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from tests.stats import driver

    users = {u.username: u for u in get_user_model().objects.filter(username__in=["svc", "alice", "carol", "sam"])}
    print("ready", flush=True)
    sys.stdin.readline()
    rng = random.Random(os.getpid())
    outcomes = []
    for _ in range(steps):
        try:
            outcomes.append(driver.random_steps(rng, 1, users, queues)[0])
        except Exception as exc:  # noqa: BLE001 - a lost race (a deadlock, a stale row) is an outcome, not a crash
            outcomes.append(f"error:{type(exc).__name__}")
    connection.close()
    print("\n".join(outcomes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
