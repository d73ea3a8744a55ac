"""Directory services: each change is audited in its stream; availability hands held items
over (to the delegate, or back to distribution); validation of delegates, skills, the tree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model

from audit.models import AuditRecord
from audit.services import audit_verify
from config.context import acting
from directory import services
from directory.models import Department, Profile
from tests import factories
from workitems import services as items
from workitems.errors import NotAllowed, ValidationFailed

pytestmark = pytest.mark.django_db
User = get_user_model()
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def actions(stream: str) -> list[str]:
    return list(AuditRecord.objects.filter(stream=stream).order_by("seq").values_list("action", flat=True))


@pytest.fixture
def held(make_item, alice):
    """An item alice has claimed (ASSIGNED to her)."""
    item = make_item()
    return items.work_item_claim(item_id=item.pk, actor=alice)


# --- availability ----------------------------------------------------------------------


def test_out_of_office_now_moves_held_items_to_the_delegate(alice, carol, held):
    with acting(channel="api"):
        services.availability_set(
            actor=alice, user=alice, out_of_office_until=T0 + timedelta(days=3650), delegate=carol
        )
    held.refresh_from_db()
    assert held.assignee_id == carol.pk and held.state == "ASSIGNED"
    profile = Profile.objects.get(user=alice)
    assert profile.is_out_of_office() and profile.delegate == carol
    record = AuditRecord.objects.get(stream=f"user:{alice.pk}", action="user.out_of_office")
    assert record.channel == "api" and record.actor_id == alice.pk and record.data["begun"] is True
    assert record.data["changes"]["delegate"] == [None, "carol"]


def test_out_of_office_without_delegate_sends_items_back_to_distribution(alice, held):
    services.availability_set(actor=alice, user=alice)
    held.refresh_from_db()
    assert held.assignee_id != alice.pk
    assert held.state in ("OFFERED", "ASSIGNED")


def test_back_from_absence_takes_back_untouched_items(alice, carol, held):
    services.availability_set(actor=alice, user=alice, delegate=carol)
    services.availability_clear(actor=alice, user=alice)
    held.refresh_from_db()
    assert held.assignee_id == alice.pk
    assert actions(f"user:{alice.pk}") == ["user.out_of_office", "user.available"]


def test_a_later_absence_is_handed_over_when_it_begins(alice, carol, held):
    start = T0 + timedelta(hours=1)
    with time_machine.travel(T0, tick=False):
        services.availability_set(actor=alice, user=alice, out_of_office_from=start, delegate=carol)
        held.refresh_from_db()
        assert held.assignee_id == alice.pk  # not yet
        assert services.availability_sweep() == 0
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        assert services.availability_sweep() == 1
        held.refresh_from_db()
        assert held.assignee_id == carol.pk
        assert services.availability_sweep() == 0  # once per absence
    assert actions(f"user:{alice.pk}") == ["user.out_of_office", "user.out_of_office_begun"]


@pytest.mark.parametrize(
    ("delegate", "message"),
    [("self", "their own delegate"), ("inactive", "not active")],
)
def test_delegate_validation(alice, carol, delegate, message):
    if delegate == "self":
        target = alice
    else:
        services.user_deactivate(actor=None, user=carol)
        target = carol
    with pytest.raises(ValidationFailed) as err:
        services.availability_set(actor=alice, user=alice, delegate=target)
    assert err.value.errors[0]["field"] == "delegate" and message in err.value.errors[0]["message"]
    assert not Profile.objects.filter(user=alice, out_of_office_from__isnull=False).exists()


def test_delegates_may_not_point_at_each_other(alice, carol):
    services.availability_set(actor=carol, user=carol, delegate=alice)
    with pytest.raises(ValidationFailed, match="delegates to alice"):
        services.availability_set(actor=alice, user=alice, delegate=carol)


def test_absence_window_checks(alice):
    with pytest.raises(ValidationFailed):
        services.availability_set(actor=alice, user=alice, out_of_office_from=T0, out_of_office_until=T0)
    with pytest.raises(ValidationFailed, match="future"):
        services.availability_set(
            actor=alice,
            user=alice,
            out_of_office_from=T0 - timedelta(days=9),
            out_of_office_until=T0 - timedelta(days=8),
        )


def test_only_self_or_supervisor_changes_availability(alice, carol, sam):
    with pytest.raises(NotAllowed):
        services.availability_set(actor=carol, user=alice)
    services.availability_set(actor=sam, user=alice)
    services.availability_clear(actor=sam, user=alice)
    with pytest.raises(NotAllowed):
        services.availability_clear(actor=carol, user=alice)


# --- accounts ------------------------------------------------------------------------------


def test_deactivation_releases_held_items_and_is_audited(alice, sam, held):
    with acting(channel="admin"):
        services.user_deactivate(actor=sam, user=alice, reason="left")
    held.refresh_from_db()
    alice.refresh_from_db()
    assert not alice.is_active and held.assignee_id != alice.pk
    rec = AuditRecord.objects.get(stream=f"user:{alice.pk}", action="user.deactivated")
    assert (rec.channel, rec.actor_username, rec.data) == ("admin", "sam", {"reason": "left"})
    services.user_deactivate(actor=sam, user=alice)  # already inactive: nothing more
    assert actions(f"user:{alice.pk}") == ["user.deactivated"]


def test_groups_change_is_audited_with_added_and_removed(alice):
    team_b = factories.group("team-b")
    added, removed = services.user_set_groups(
        actor=None, user=alice, groups=[team_b, factories.group("workstream-workers")]
    )
    assert (added, removed) == (["team-b"], ["team-a"])
    assert services.user_set_groups(actor=None, user=alice, groups=list(alice.groups.all())) == ([], [])
    assert actions(f"user:{alice.pk}") == ["user.groups_changed"]


# --- profiles and departments ----------------------------------------------------------------


def test_profile_update_validates_skills(alice):
    services.profile_update(actor=None, user=alice, skills={"german": 7, "claims": 10}, capacity=5)
    assert Profile.objects.get(user=alice).skills == {"german": 7, "claims": 10}
    with pytest.raises(ValidationFailed) as err:
        services.profile_update(actor=None, user=alice, skills={"german": 11, "x": True})
    assert {e["field"] for e in err.value.errors} == {"skills.german", "skills.x"}
    with pytest.raises(ValidationFailed):
        services.profile_update(actor=None, user=alice, capacity=-1)
    # Unchanged values write nothing.
    services.profile_update(actor=None, user=alice, skills={"german": 7, "claims": 10}, capacity=5)
    assert actions(f"user:{alice.pk}") == ["user.profile_updated"]


def test_department_tree_refuses_cycles_and_is_audited(db):
    ops = services.department_create(actor=None, code="ops", name="Operations")
    claims = services.department_create(actor=None, code="claims", name="Claims", parent=ops)
    with pytest.raises(ValidationFailed, match="own ancestor"):
        services.department_update(actor=None, department=ops, parent=claims)
    services.department_update(actor=None, department=claims, name="Claims handling")
    with pytest.raises(ValidationFailed, match="sub-departments"):
        services.department_delete(actor=None, department=ops)
    services.department_delete(actor=None, department=claims)
    services.department_delete(actor=None, department=ops)
    assert not Department.objects.exists()
    assert actions(f"department:{claims.pk}") == ["department.created", "department.updated", "department.deleted"]
    assert audit_verify().ok
