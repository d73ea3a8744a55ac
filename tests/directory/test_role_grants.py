"""Temporary platform roles: an admin grants "supervisor for a week"; while in force the user
holds the role everywhere roles count (here: the supervisor's actions and visibility); at the end
the membership goes again, unless the user held it before or another grant still holds it; a
directory sync keeps a granted membership; every step is audited. Through the services and REST."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditRecord
from directory import services
from directory.models import PlatformRoleGrant
from directory.roles import role_group_name, roles_of
from tests import factories
from workitems import services as work
from workitems.errors import Conflict, NotAllowed, ValidationFailed


def fresh(user):
    return type(user).objects.get(pk=user.pk)  # no cached roles


def supervisors():
    return Group.objects.get_or_create(name=role_group_name("supervisor"))[0]


def test_a_grant_in_force_gives_the_role_everywhere_and_its_end_takes_it_back(ada, alice, make_item):
    item = make_item()
    with pytest.raises(NotAllowed):
        work.work_item_update(item_id=item.pk, actor=alice, changes={"priority": 90})
    now = timezone.now()
    grant = services.platform_role_grant(
        actor=ada, user=alice, role="supervisor", valid_to=now + timedelta(days=7), reason="cover for sam"
    )
    assert "supervisor" in roles_of(fresh(alice))
    assert work.work_item_update(item_id=item.pk, actor=fresh(alice), changes={"priority": 90}).priority == 90

    assert services.platform_role_grants_apply(at=now + timedelta(days=6)) == 0  # nothing due yet
    assert services.platform_role_grants_apply(at=now + timedelta(days=7, seconds=1)) == 1
    assert "supervisor" not in roles_of(fresh(alice))
    with pytest.raises(NotAllowed):
        work.work_item_update(item_id=item.pk, actor=fresh(alice), changes={"priority": 10})
    grant.refresh_from_db()
    assert grant.ended and grant.added
    actions = list(
        AuditRecord.objects.filter(stream=f"user:{alice.pk}", action__startswith="user.role_").values_list(
            "action", flat=True
        )
    )
    assert actions == ["user.role_granted", "user.role_grant_started", "user.role_grant_ended"]


def test_a_later_grant_starts_when_due_and_a_membership_held_before_is_kept(ada, sam, carol):
    now = timezone.now()
    later = services.platform_role_grant(
        actor=ada, user=carol, role="supervisor", valid_from=now + timedelta(hours=1), valid_to=now + timedelta(days=1)
    )
    assert "supervisor" not in roles_of(fresh(carol)) and not later.started
    assert services.platform_role_grants_apply(at=now + timedelta(hours=1, seconds=1)) == 1
    assert "supervisor" in roles_of(fresh(carol))

    # sam is a supervisor already: a grant on top neither adds nor, at its end, removes anything
    extra = services.platform_role_grant(actor=ada, user=sam, role="supervisor", valid_to=now + timedelta(hours=2))
    assert extra.started and not extra.added
    services.platform_role_grants_apply(at=now + timedelta(hours=3))
    assert "supervisor" in roles_of(fresh(sam))


def test_overlapping_grants_end_with_the_last(ada, alice):
    now = timezone.now()
    services.platform_role_grant(actor=ada, user=alice, role="supervisor", valid_to=now + timedelta(hours=1))
    services.platform_role_grant(actor=ada, user=alice, role="supervisor", valid_to=now + timedelta(hours=5))
    services.platform_role_grants_apply(at=now + timedelta(hours=2))
    assert "supervisor" in roles_of(fresh(alice))  # the second still holds it
    services.platform_role_grants_apply(at=now + timedelta(hours=6))
    assert "supervisor" not in roles_of(fresh(alice))


def test_revoke_ends_it_now_and_a_directory_sync_keeps_a_granted_membership(ada, alice, team_a):
    grant = services.platform_role_grant(
        actor=ada, user=alice, role="supervisor", valid_to=timezone.now() + timedelta(days=1)
    )
    # a sync that knows only alice's team (as an LDAP sync would) leaves the granted group
    services.user_set_groups(actor=None, user=alice, groups=[team_a], source="ldap")
    assert set(fresh(alice).groups.values_list("name", flat=True)) == {team_a.name, supervisors().name}
    revoked = services.platform_role_revoke(actor=ada, grant=grant, reason="back early")
    assert revoked.ended and revoked.valid_to <= timezone.now()
    assert "supervisor" not in roles_of(fresh(alice))
    services.user_set_groups(actor=None, user=alice, groups=[team_a], source="ldap")
    assert set(fresh(alice).groups.values_list("name", flat=True)) == {team_a.name}


def test_only_admins_grant_and_bad_grants_are_refused(ada, sam, alice):
    soon = timezone.now() + timedelta(days=1)
    with pytest.raises(NotAllowed):
        services.platform_role_grant(actor=sam, user=alice, role="supervisor", valid_to=soon)
    with pytest.raises(ValidationFailed) as exc:
        services.platform_role_grant(actor=ada, user=alice, role="overlord", valid_to=soon)
    assert exc.value.errors[0]["field"] == "role"
    for until in (timezone.now() - timedelta(hours=1), timezone.now() + timedelta(days=400)):
        with pytest.raises(Conflict) as refused:
            services.platform_role_grant(actor=ada, user=alice, role="supervisor", valid_to=until)
        assert refused.value.detail.startswith("valid_to:")
    assert not PlatformRoleGrant.objects.exists()


def test_over_rest(ada, sam, alice):
    admin = APIClient(raise_request_exception=False)
    admin.force_authenticate(ada)
    until = (timezone.now() + timedelta(days=7)).isoformat()
    made = admin.post(
        f"/api/v1/users/{alice.username}/role-grants", {"role": "supervisor", "valid_to": until}, format="json"
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert (body["role"], body["user"], body["in_force"], body["granted_by"]) == ("supervisor", "alice", True, "ada")
    listed = admin.get(f"/api/v1/users/{alice.username}/role-grants").json()
    assert [g["id"] for g in listed] == [body["id"]]
    unknown = admin.post(
        f"/api/v1/users/{alice.username}/role-grants", {"role": "supervisor", "valid_to": until, "x": 1}, format="json"
    )
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "x"
    bad = admin.post(f"/api/v1/users/{alice.username}/role-grants", {"role": "king", "valid_to": until}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "role"

    boss = APIClient(raise_request_exception=False)
    boss.force_authenticate(sam)
    assert (
        boss.post(
            f"/api/v1/users/{alice.username}/role-grants", {"role": "admin", "valid_to": until}, format="json"
        ).status_code
        == 403
    )
    assert boss.get(f"/api/v1/users/{alice.username}/role-grants").status_code == 403

    revoked = admin.post(f"/api/v1/role-grants/{body['id']}/revoke", {"reason": "done"}, format="json")
    assert revoked.status_code == 200 and revoked.json()["in_force"] is False
    assert admin.post("/api/v1/role-grants/999999/revoke", {}, format="json").status_code == 404
    assert factories.user("nobody") and admin.get("/api/v1/users/nobody-else/role-grants").status_code == 404
