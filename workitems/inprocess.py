"""The periodic jobs run in-process, for `make run`: there is no Celery beat there, yet an
overdue item must still be escalated and a lapsed reservation moved on with no manual step.

`WORKSTREAM_INPROCESS_BEAT=true` (the Makefile sets it for `runserver` only) starts one
daemon thread that runs, as the system, the SLA scan every `sla.scanSeconds`, the
reservation expiry every 10 s, the notifier (read the outbox, send what is due) every
`notifications.pollSeconds`, so people are told too, the capacity check every
`capacity.checkSeconds`, the daily summary's check every `notifications.summary.checkSeconds`,
the statistics' roll-up every 5 s (stats.tasks.ROLLUP_SECONDS) and the start and end of
temporary platform roles every minute.
A deployment runs Celery beat instead and leaves this off.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.db import close_old_connections

from config import wsconfig
from config.context import acting
from directory import services as directory_services
from notifications import summary
from notifications import tasks as notification_tasks
from stats import rollup as stats_rollup
from stats.tasks import ROLLUP_SECONDS
from workitems import services

log = logging.getLogger(__name__)
RESERVATION_SECONDS = 10.0
ROLE_GRANT_SECONDS = 60.0
_started = threading.Event()


def enabled() -> bool:
    # Under runserver's autoreloader the app loads twice; only the serving child (RUN_MAIN) runs jobs.
    flag = os.environ.get("WORKSTREAM_INPROCESS_BEAT", "").lower() in ("1", "true", "yes")
    return flag and os.environ.get("RUN_MAIN", "true") == "true"


def run_due_jobs(last: dict[str, float], now: float) -> list[str]:
    """Run each job whose period has passed since it last ran (`last` is updated); returns their names."""
    cfg = wsconfig.get()
    periods = {
        "sla_scan": float(cfg.sla.scanSeconds),
        "expire_reservations": RESERVATION_SECONDS,
        "notify": float(cfg.notifications.pollSeconds),
        "capacity_check": float(cfg.capacity.checkSeconds),
        "daily_summary": float(cfg.notifications.summary.checkSeconds),
        "stats_rollup": ROLLUP_SECONDS,
        "role_grants": ROLE_GRANT_SECONDS,
    }
    ran = []
    for name, period in periods.items():
        if now - last.get(name, 0.0) < period:
            continue
        last[name] = now
        try:
            with acting(channel="system"):
                if name == "sla_scan":
                    services.sla_scan(batch=cfg.sla.batchSize)
                elif name == "expire_reservations":
                    services.work_items_expire_reservations()
                elif name == "stats_rollup":
                    stats_rollup.rollup()
                elif name == "capacity_check":
                    services.queues_capacity_check()
                elif name == "daily_summary":
                    summary.summarise()
                elif name == "role_grants":
                    directory_services.platform_role_grants_apply()
                else:
                    notification_tasks.run()
            ran.append(name)
        except Exception:  # noqa: BLE001 - a failed round is logged; the next one tries again
            log.exception("in-process job %s failed", name)
    return ran


def start() -> threading.Thread | None:
    """Start the in-process beat once per process (None when off or already running)."""
    if not enabled() or _started.is_set():
        return None
    _started.set()

    def loop() -> None:
        last: dict[str, float] = {}
        time.sleep(2.0)  # let the server finish starting
        while True:
            close_old_connections()  # the thread's own connection, as a request cycle would
            run_due_jobs(last, time.monotonic())
            time.sleep(1.0)

    thread = threading.Thread(target=loop, name="workstream-inprocess-beat", daemon=True)
    thread.start()
    log.info("in-process beat started (SLA scan every %ss)", wsconfig.get().sla.scanSeconds)
    return thread
