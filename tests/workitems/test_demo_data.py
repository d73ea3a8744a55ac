"""`manage.py demo_data`: every state present, built through the services, and idempotent."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from audit.models import AuditRecord
from audit.services import audit_verify
from directory.roles import ROLES, role_group_name, roles_of
from events.models import OutboxEvent
from workitems.models import Lifecycle, Queue, State, WorkItem

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Six users with PBKDF2 cost seconds per run; the hasher is not what is tested here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run() -> str:
    out = StringIO()
    call_command("demo_data", stdout=out)
    return out.getvalue()


def snapshot() -> dict:
    """Every row the command can touch, with every column (timestamps and password hashes too)."""
    models = [
        User,
        User.groups.through,
        Group,
        Lifecycle,
        Queue,
        Queue.candidate_groups.through,
        WorkItem,
        WorkItem.candidate_users.through,
        WorkItem.candidate_groups.through,
        WorkItem.excluded_users.through,
        AuditRecord,
        OutboxEvent,
    ]
    return {m._meta.label: list(m.objects.order_by("pk").values()) for m in models}


def test_demo_data_covers_every_state_through_the_services():
    out = run()
    assert 'password "demo"' in out

    items = WorkItem.objects.filter(workflow_id__startswith="demo-")
    states = set(items.values_list("state", flat=True))
    assert states >= {s for s in State.values if s != State.CREATED}
    escalated = items.filter(escalation_level__gt=0)
    assert escalated.filter(queue__name="escalations").exists()  # re-routed while offered
    assert escalated.exclude(queue__name="escalations").filter(state=State.IN_PROGRESS).exists()
    assert items.filter(queue__name="kyc-review", state=State.IN_PROGRESS).exclude(sub_status="").exists()

    # Moved only through the services: one audit record and one outbox event per version,
    # every record written as the system channel, and the hash chains intact.
    for item in items:
        assert AuditRecord.objects.filter(work_item=item).count() == item.version, item
        assert OutboxEvent.objects.filter(aggregate_id=str(item.pk)).count() == item.version, item
    assert set(AuditRecord.objects.values_list("channel", flat=True)) == {"system"}
    assert audit_verify().ok

    claims = Queue.objects.get(name="claims")
    assert claims.strategy == "offer" and claims.sla == timedelta(hours=4) and claims.capacity_per_user == 5
    assert claims.escalation_queue.name == "escalations"
    kyc = Queue.objects.get(name="kyc-review").lifecycle
    assert kyc.sub_status_names and kyc.result_schema

    expected_roles = {"alice": {"worker"}, "carol": {"worker"}, "bob": {"worker"}, "sam": {"supervisor"}}
    expected_roles |= {"svc": {"service"}, "admin": {"admin"}}
    for username, roles in expected_roles.items():
        user = User.objects.get(username=username)
        assert roles_of(user) == roles and user.check_password("demo")
    assert User.objects.get(username="admin").is_superuser
    assert set(User.objects.get(username="bob").groups.values_list("name", flat=True)) >= {"team-b"}
    assert {role_group_name(r) for r in ROLES} <= set(Group.objects.values_list("name", flat=True))


def test_demo_data_twice_changes_nothing():
    run()
    before = snapshot()
    out = run()
    assert snapshot() == before
    assert "already present" in out and 'password "demo"' not in out


def test_demo_data_keeps_existing_users_and_queues_as_they_are():
    """A rerun must not reset what an operator changed (a password, a queue's SLA)."""
    run()
    alice = User.objects.get(username="alice")
    alice.set_password("changed")
    alice.save()
    Queue.objects.filter(name="claims").update(sla=timedelta(hours=8))
    run()
    assert User.objects.get(username="alice").check_password("changed")
    assert Queue.objects.get(name="claims").sla == timedelta(hours=8)
