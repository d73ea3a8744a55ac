"""The Celery path for real: a commit nudges the relay task through Redis, a worker runs it.

The producer and the worker are subprocesses on this test's database, with a Celery
queue of their own (CELERY_TASK_DEFAULT_QUEUE), so nothing reaches other workers.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
from kombu import Connection

from events import nudge
from tests.events.conftest import BASE_DIR, manage_py, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CREATE = """
from django.contrib.auth import get_user_model
from workitems import services
svc = get_user_model().objects.get(username="svc")
for i in range(3):
    services.work_item_create(actor=svc, data={"workflow_id": f"celery-{i}", "task_name": "t", "queue": "team-a-queue"})
"""


def test_a_commit_queues_the_relay_task_and_a_worker_publishes(events_config, tap, names, svc, queue, settings):
    _, path = events_config({"relay": {"nudge": "celery"}})
    t = tap()
    celery_queue = f"ws-test-celery-{uuid.uuid4().hex[:8]}"
    env = subprocess_env(path, CELERY_TASK_DEFAULT_QUEUE=celery_queue, LOG_LEVEL="WARNING")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", celery_queue, "-l", "warning"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        done = subprocess.run([*manage_py(), "shell", "-c", CREATE], env=env, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        got = t.drain(expect=3, timeout=30)
        assert sorted(e["payload"]["work_item"]["workflow_id"] for e, _ in got) == ["celery-0", "celery-1", "celery-2"]
        # the task cleared its debounce key before its last pass: the next commit queues a task again
        deadline = time.monotonic() + 10
        while nudge.redis_client().exists(nudge.relay_queued_key()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not nudge.redis_client().exists(nudge.relay_queued_key())
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        with Connection(settings.CELERY_BROKER_URL) as conn:  # the queue's list and bindings in Redis
            conn.default_channel.queue_delete(celery_queue)
