"""The directory admin: every change goes through the services (audited, channel "admin")."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from audit.models import AuditRecord
from directory import services
from directory.models import Department, Profile, Role, RoleAssignment
from tests import factories
from workitems import services as items

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def root(db):
    return factories.user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def web(root):
    c = Client()
    c.force_login(root)
    return c


def records(stream: str):
    return list(AuditRecord.objects.filter(stream=stream).order_by("seq"))


def ok(resp):
    if resp.status_code == 200 and resp.context is not None:
        errors = [f.errors for f in [resp.context.get("adminform")] if f is not None and f.errors]
        inlines = [fs.formset.errors for fs in resp.context.get("inline_admin_formsets", []) if fs.formset.errors]
        raise AssertionError(f"form not saved: {errors} {inlines} {resp.context.get('errors')}")
    assert resp.status_code == 302, resp.status_code


def test_department_tree_list_and_audited_changes(web, root):
    ops = services.department_create(actor=None, code="ops", name="Operations")
    services.department_create(actor=None, code="finance", name="Finance")
    services.department_create(actor=None, code="claims", name="Claims", parent=ops)
    page = web.get("/admin/directory/department/").content.decode()
    order = [page.index(name) for name in ("Finance", "Operations", "└ Claims")]
    assert order == sorted(order)  # parents before children, siblings by name

    ok(web.post("/admin/directory/department/add/", {"code": "support", "name": "Support", "parent": ops.pk}))
    support = Department.objects.get(code="support")
    (rec,) = records(f"department:{support.pk}")
    assert (rec.action, rec.channel, rec.actor_id) == ("department.created", "admin", root.pk)

    # A cycle is refused by the form, not saved.
    resp = web.post(
        f"/admin/directory/department/{ops.pk}/change/", {"code": "ops", "name": "Operations", "parent": support.pk}
    )
    assert resp.status_code == 200 and "own ancestor" in resp.content.decode()


def test_profile_admin_routes_changes_to_services(web, root, alice, carol, make_item):
    item = items.work_item_claim(item_id=make_item().pk, actor=alice)
    profile = Profile.objects.get_or_create(user=alice)[0]
    ok(
        web.post(
            f"/admin/directory/profile/{profile.pk}/change/",
            {
                "department": "",
                "skills": '{"german": 7}',
                "capacity": "3",
                "out_of_office_from_0": "2020-01-01",
                "out_of_office_from_1": "00:00:00",
                "out_of_office_until_0": "",
                "out_of_office_until_1": "",
                "delegate": carol.pk,
            },
        )
    )
    profile.refresh_from_db()
    item.refresh_from_db()
    assert profile.skills == {"german": 7} and profile.capacity == 3 and profile.delegate == carol
    assert item.assignee_id == carol.pk  # the absence began: the held item went to the delegate
    actions = [(r.action, r.channel, r.actor_id) for r in records(f"user:{alice.pk}")]
    assert actions == [("user.profile_updated", "admin", root.pk), ("user.out_of_office", "admin", root.pk)]


def test_bulk_out_of_office_action(web, alice, carol, bob, team_a):
    dave = factories.user("dave", roles=["worker"], groups=[team_a])
    data = {"action": "mark_out_of_office", "_selected_action": [alice.pk, dave.pk, bob.pk]}
    page = web.post("/admin/auth/user/", data)
    assert page.status_code == 200 and b"Mark 3 users out of office" in page.content
    done = web.post("/admin/auth/user/", {**data, "apply": "1", "delegate": carol.pk}, follow=True)
    for u in (alice, dave):  # carol shares their team: she may stand in for them
        p = Profile.objects.get(user=u)
        assert p.is_out_of_office() and p.delegate == carol
        assert records(f"user:{u.pk}")[-1].channel == "admin"
    # bob is of team B: carol may not be his delegate (policy.delegate_refusal); the others went through
    shown = [str(m) for m in done.context["messages"]]
    assert any(m.startswith("bob") and "shares no team with bob" in m for m in shown), shown
    assert not Profile.objects.filter(user=bob, delegate__isnull=False).exists()
    ok(web.post("/admin/auth/user/", {"action": "mark_available", "_selected_action": [alice.pk]}))
    assert not Profile.objects.get(user=alice).is_out_of_office()


def test_deactivate_action_releases_held_items(web, alice, make_item):
    item = items.work_item_claim(item_id=make_item().pk, actor=alice)
    ok(web.post("/admin/auth/user/", {"action": "deactivate_users", "_selected_action": [alice.pk]}))
    alice.refresh_from_db()
    item.refresh_from_db()
    assert not alice.is_active and item.assignee_id != alice.pk
    assert records(f"user:{alice.pk}")[-1].action == "user.deactivated"


def test_user_change_form_with_inlines(web, root, alice, queue):
    role = services.role_create(actor=None, code="reviewer", name="Reviewer", queues=[queue])
    profile = Profile.objects.get_or_create(user=alice)[0]
    team_b = factories.group("team-b")
    assert web.get(f"/admin/auth/user/{alice.pk}/change/").status_code == 200
    data = {
        "username": "alice",
        "first_name": "Alice",
        "last_name": "",
        "email": "alice@example.com",
        "is_active": "on",
        "groups": [team_b.pk],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "workstream_profile-TOTAL_FORMS": "1",
        "workstream_profile-INITIAL_FORMS": "1",
        "workstream_profile-MIN_NUM_FORMS": "0",
        "workstream_profile-MAX_NUM_FORMS": "1",
        "workstream_profile-0-id": profile.pk,
        "workstream_profile-0-user": alice.pk,
        "workstream_profile-0-skills": '{"claims": 4}',
        "workstream_profile-0-capacity": "",
        "role_assignments-TOTAL_FORMS": "1",
        "role_assignments-INITIAL_FORMS": "0",
        "role_assignments-MIN_NUM_FORMS": "0",
        "role_assignments-MAX_NUM_FORMS": "1000",
        "role_assignments-0-role": role.pk,
        "role_assignments-0-valid_from_0": "2026-01-01",
        "role_assignments-0-valid_from_1": "00:00:00",
        "role_assignments-0-reason": "cover",
    }
    ok(web.post(f"/admin/auth/user/{alice.pk}/change/", data))
    alice.refresh_from_db()
    assert alice.first_name == "Alice" and set(alice.groups.values_list("name", flat=True)) == {"team-b"}
    assert Profile.objects.get(user=alice).skills == {"claims": 4}
    grant = RoleAssignment.objects.get(user=alice)
    assert grant.granted_by == root and grant.reason == "cover"
    user_actions = [r.action for r in records(f"user:{alice.pk}")]
    assert user_actions == ["user.updated", "user.groups_changed", "user.profile_updated"]
    assert all(r.channel == "admin" for r in records(f"user:{alice.pk}"))
    assert records(f"roleassignment:{grant.pk}")[0].action == "roleassignment.granted"
    assert web.get(f"/admin/auth/user/{alice.pk}/delete/").status_code == 403  # deactivate, never delete


def test_role_admin(web, queue):
    ok(
        web.post(
            "/admin/directory/role/add/",
            {"code": "night", "name": "Night shift", "description": "", "actions": '["claim"]', "queues": [queue.pk]},
        )
    )
    role = Role.objects.get(code="night")
    assert list(role.queues.values_list("name", flat=True)) == [queue.name]
    (rec,) = records(f"role:{role.pk}")
    assert rec.data["queues"] == [queue.name] and rec.channel == "admin"


def test_revoke_action(web, alice, queue):
    role = services.role_create(actor=None, code="r", name="R", queues=[queue])
    a = services.role_assignment_grant(actor=None, user=alice, role=role)
    ok(web.post("/admin/directory/roleassignment/", {"action": "revoke_assignments", "_selected_action": [a.pk]}))
    a.refresh_from_db()
    assert a.valid_to is not None
    assert [r.action for r in records(f"roleassignment:{a.pk}")] == ["roleassignment.granted", "roleassignment.revoked"]
    assert web.get("/admin/directory/roleassignment/?valid=past").status_code == 200


def test_a_temporary_platform_role_is_granted_and_revoked_in_the_admin(web, root):
    from datetime import timedelta

    from django.utils import timezone

    from directory.models import PlatformRoleGrant
    from directory.roles import roles_of

    alice = factories.user("alice", roles=["worker"])
    until = timezone.now() + timedelta(days=7)
    ok(
        web.post(
            "/admin/directory/platformrolegrant/add/",
            {
                "user": alice.pk,
                "role": "supervisor",
                "valid_from_0": timezone.now().strftime("%Y-%m-%d"),
                "valid_from_1": timezone.now().strftime("%H:%M:%S"),
                "valid_to_0": until.strftime("%Y-%m-%d"),
                "valid_to_1": until.strftime("%H:%M:%S"),
                "reason": "cover",
            },
        )
    )
    grant = PlatformRoleGrant.objects.get(user=alice)
    assert grant.granted_by == root and grant.started
    assert "supervisor" in roles_of(get_user_model().objects.get(pk=alice.pk))
    assert [r.channel for r in records(f"user:{alice.pk}") if r.action == "user.role_granted"] == ["admin"]
    page = web.get(f"/admin/directory/platformrolegrant/{grant.pk}/change/").content.decode()
    assert 'name="_save"' not in page  # a grant is changed only by revoking it
    web.post(
        "/admin/directory/platformrolegrant/",
        {"action": "revoke_grants", "_selected_action": [grant.pk]},
    )
    grant.refresh_from_db()
    assert grant.ended
    assert "supervisor" not in roles_of(get_user_model().objects.get(pk=alice.pk))
