"""Role assignments are time-bound: an expired one grants nothing, a future-dated one starts
on time (frozen clock), both for distribution's candidates and for what a worker may see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from audit.models import AuditRecord
from directory import services
from directory.models import RoleAssignment
from distribution.constraints import pool_user_ids
from tests import factories
from workitems.errors import ValidationFailed

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def role_queue(db):
    """A queue nobody reaches through a group: only the role grants it."""
    return factories.queue("escalations")


@pytest.fixture
def reviewer(role_queue):
    return services.role_create(
        actor=None, code="escalation-reviewer", name="Escalation reviewer", actions=["claim"], queues=[role_queue]
    )


def client_for(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


def test_valid_at_window_edges(alice, reviewer):
    a = services.role_assignment_grant(
        actor=None, user=alice, role=reviewer, valid_from=T0, valid_to=T0 + timedelta(days=1)
    )
    valid = RoleAssignment.objects.valid_at
    assert not valid(T0 - timedelta(seconds=1)).filter(pk=a.pk).exists()
    assert valid(T0).filter(pk=a.pk).exists()  # from is inclusive
    assert valid(T0 + timedelta(hours=23)).filter(pk=a.pk).exists()
    assert not valid(T0 + timedelta(days=1)).filter(pk=a.pk).exists()  # to is exclusive
    open_ended = services.role_assignment_grant(actor=None, user=alice, role=reviewer, valid_from=T0)
    assert valid(T0 + timedelta(days=3650)).filter(pk=open_ended.pk).exists()


def test_expired_assignment_no_longer_grants(alice, svc, reviewer, role_queue):
    with time_machine.travel(T0, tick=False):
        services.role_assignment_grant(
            actor=None, user=alice, role=reviewer, valid_from=T0 - timedelta(days=2), valid_to=T0 + timedelta(hours=1)
        )
        item = factories.item(actor=svc, queue=role_queue)
        assert alice.pk in pool_user_ids(item)
        assert client_for(alice).get(f"/api/v1/workitems/{item.pk}").status_code == 200
        roles = client_for(alice).get("/api/v1/users/alice").json()["roles"]
        assert [r["role"] for r in roles] == ["escalation-reviewer"]
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        assert alice.pk not in pool_user_ids(item)
        resp = client_for(alice).get(f"/api/v1/workitems/{item.pk}")
        assert resp.status_code == 404
        assert client_for(alice).get("/api/v1/users/alice").json()["roles"] == []
        listing = client_for(alice).get("/api/v1/roles").json()["results"]
        assert [(r["code"], r["holders"], r["queues"]) for r in listing] == [
            ("escalation-reviewer", 0, ["escalations"])
        ]


def test_future_dated_assignment_starts_on_time(alice, svc, reviewer, role_queue):
    start = T0 + timedelta(hours=2)
    with time_machine.travel(T0, tick=False):
        services.role_assignment_grant(actor=None, user=alice, role=reviewer, valid_from=start, reason="cover")
        item = factories.item(actor=svc, queue=role_queue)
        assert alice.pk not in pool_user_ids(item)
        assert client_for(alice).get(f"/api/v1/workitems/{item.pk}").status_code == 404
    with time_machine.travel(start - timedelta(seconds=1), tick=False):
        assert alice.pk not in pool_user_ids(item)
    with time_machine.travel(start, tick=False):
        assert alice.pk in pool_user_ids(item)
        assert client_for(alice).get(f"/api/v1/workitems/{item.pk}").status_code == 200
        listing = client_for(alice).get("/api/v1/roles").json()["results"]
        assert listing[0]["holders"] == 1


def test_revoke_ends_now_and_deletes_what_has_not_begun(alice, sam, reviewer):
    with time_machine.travel(T0, tick=False):
        running = services.role_assignment_grant(
            actor=sam, user=alice, role=reviewer, valid_from=T0 - timedelta(days=1)
        )
        future = services.role_assignment_grant(actor=sam, user=alice, role=reviewer, valid_from=T0 + timedelta(days=1))
        ended = services.role_assignment_revoke(actor=sam, assignment=running, reason="done")
        assert ended.valid_to == T0
        assert services.role_assignment_revoke(actor=sam, assignment=future) is None
        assert not RoleAssignment.objects.filter(pk=future.pk).exists()
        assert not RoleAssignment.objects.valid_at(T0).filter(user=alice).exists()
    actions = list(
        AuditRecord.objects.filter(stream__startswith="roleassignment:").order_by("id").values_list("action", flat=True)
    )
    assert actions == [
        "roleassignment.granted",
        "roleassignment.granted",
        "roleassignment.revoked",
        "roleassignment.deleted",
    ]
    granted = AuditRecord.objects.filter(stream=f"roleassignment:{running.pk}").first()
    assert granted.actor_id == sam.pk and granted.data["role"] == "escalation-reviewer"


def test_window_must_be_forward(alice, reviewer):
    with pytest.raises(ValidationFailed) as err:
        services.role_assignment_grant(actor=None, user=alice, role=reviewer, valid_from=T0, valid_to=T0)
    assert err.value.errors[0]["field"] == "valid_to"
