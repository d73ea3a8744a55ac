"""Under a real Celery beat and worker (subprocesses, Redis broker, this test's database):
an overdue item is escalated and its people are told by email, with no manual step.

The beat schedule is the deployment's own (config/settings.py) with the periods of a
configuration file made for the test (SLA scan and notifier every second); both processes
use a Celery queue of their own, so nothing reaches other workers."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
import yaml
from django.conf import settings
from kombu import Connection

from notifications.models import Notification, NotificationDelivery
from tests import factories
from tests.events.conftest import BASE_DIR, subprocess_env
from tests.notifications import conftest as notifications_conftest
from workitems.models import SlaState, WorkItem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
smtp = notifications_conftest.smtp  # aiosmtpd on loopback


def start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", *args, "-l", "warning"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode(errors="replace")[-3000:]


def test_beat_and_worker_escalate_an_overdue_item_and_email_its_people(tmp_path, smtp, svc, alice, sam, team_a):
    box = smtp()
    alice.email, sam.email = "alice@example.test", "sam@example.test"
    alice.save()
    sam.save()
    config = tmp_path / "workstream.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "sla": {"scanSeconds": 1},
                "capacity": {"checkSeconds": 3600},
                "notifications": {
                    "channels": {"email": True},
                    "pollSeconds": 1,
                    "summary": {"enabled": False},
                },
                "relay": {"nudge": "none"},
            }
        )
    )
    q = factories.queue("celery-sla", groups=[team_a], sla=timedelta(hours=4))
    item = factories.item(actor=svc, queue=q, assignee="alice", priority=40)
    # Overdue since a minute ago: the next scan must find it with nobody calling anything.
    past = item.created_at - timedelta(minutes=1)
    WorkItem.objects.filter(pk=item.pk).update(due_at=past, sla_started_at=past - timedelta(hours=4), sla_next_at=past)
    celery_queue = f"ws-test-sla-{uuid.uuid4().hex[:8]}"
    env = subprocess_env(
        config,
        CELERY_TASK_DEFAULT_QUEUE=celery_queue,
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST=settings.EMAIL_HOST,
        EMAIL_PORT=str(settings.EMAIL_PORT),
    )
    worker = start(["worker", "--pool=solo", "-Q", celery_queue], env)
    beat = start(["beat", "-s", str(tmp_path / "beat-schedule")], env)
    logs = ""
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            item.refresh_from_db()
            sent = NotificationDelivery.objects.filter(work_item_id=item.pk, kind="sla_breached", status="sent")
            if item.sla_level == 2 and sent.count() == 2:
                break
            assert worker.poll() is None and beat.poll() is None, "a Celery process exited"
            time.sleep(0.5)
    finally:
        logs = stop(beat) + stop(worker)
        with Connection(settings.CELERY_BROKER_URL) as conn:
            conn.default_channel.queue_delete(celery_queue)
    assert item.sla_state == SlaState.BREACHED, logs
    assert (item.sla_level, item.escalation_level) == (2, 1), logs  # both default levels, once each
    assert item.breached_at == item.due_at
    told = set(
        Notification.objects.filter(work_item_id=item.pk, kind="sla_breached").values_list(
            "recipient__username", flat=True
        )
    )
    assert told == {"alice", "sam"}
    breach_mails = sorted(to[0] for to, body in box.messages if "SLA breached" in body)
    assert breach_mails == ["alice@example.test", "sam@example.test"], logs
