"""The viewflow side of bench/viewflow_lifecycle.py, run by viewflow's own venv's python.

Reads commands on stdin, one a line: `run SECONDS` runs lifecycles one after another for that
long and answers one JSON line of each step's times (seconds) and the CPU time; `count` answers
the SQL statements of one lifecycle; `quit` ends. A lifecycle is what viewflow's own views do,
without HTTP: start the process (`ReviewFlow.start.run`, in a transaction, as the start view),
assign the human task to the user (under the flow's lock and a transaction, with its
permission check, as the assign view), then start and complete it (under the lock, as the task
view: `activation.start` and `activation.execute`, which ends the process).
"""

import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Permission  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from vfbench.flows import ReviewFlow  # noqa: E402

STEPS = ("create", "assign", "complete")


def setup_user():
    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_user("vf-worker")
    perm = ReviewFlow.review._owner_permission  # "vfbench.manage_review"-like, auto-created by migrate
    app_label, codename = perm.split(".")
    user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return get_user_model().objects.get(pk=user.pk)


def lifecycle(user, times=None):
    t0 = time.perf_counter()
    with transaction.atomic():
        process = ReviewFlow.start.run(run_id=f"vf-{uuid.uuid4().hex}")
    t1 = time.perf_counter()
    task_pk = process.task_set.get(flow_task=ReviewFlow.review, status="NEW").pk
    with ReviewFlow.lock(process.pk), transaction.atomic():
        task = ReviewFlow.task_class.objects.get(pk=task_pk)
        activation = ReviewFlow.review.activation_class(task)
        if not ReviewFlow.review.can_assign(user, task):
            raise RuntimeError("may not assign")
        activation.assign(user)
    t2 = time.perf_counter()
    with ReviewFlow.lock(process.pk), transaction.atomic():
        task = ReviewFlow.task_class.objects.get(pk=task_pk)
        activation = ReviewFlow.review.activation_class(task)
        if not ReviewFlow.review.can_execute(user, task):
            raise RuntimeError("may not execute")
        activation.start(None)
        activation.process.save()
        activation.execute()
    t3 = time.perf_counter()
    if times is not None:
        for step, dt in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            times[step].append(dt)
    return process


def main():
    user = setup_user()
    lifecycle(user)
    process = ReviewFlow.process_class.objects.get(pk=lifecycle(user).pk)
    assert process.status == "DONE", process.status
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "count":
            with CaptureQueriesContext(connection) as q:
                lifecycle(user)
            sql = [x["sql"] for x in q.captured_queries]
            plain = [s for s in sql if not s.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "BEGIN", "COMMIT"))]
            print(json.dumps({"statements": len(plain), "all": len(sql)}), flush=True)
            continue
        duration = float(cmd[1])
        times = {s: [] for s in STEPS}
        cpu0, deadline = time.process_time(), time.perf_counter() + duration
        while time.perf_counter() < deadline:
            lifecycle(user, times)
        print(json.dumps({"times": times, "cpu": time.process_time() - cpu0}), flush=True)


if __name__ == "__main__":
    main()
