"""One OS process of the racing-scanners test (tests/workitems/test_sla_race.py).

Run as `python -m tests.workitems.sla_scanner <batch>` with DATABASE_URL pointing at the test
database: sets Django up, prints `ready`, waits for a line on stdin (so all processes start
together), runs the SLA scan until it finds nothing more, and prints how many items it changed.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from workitems import services

    print("ready", flush=True)
    sys.stdin.readline()
    changed = 0
    while True:
        n = services.sla_scan(batch=int(argv[0]))
        changed += n
        if n == 0:
            break
    print(changed, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
