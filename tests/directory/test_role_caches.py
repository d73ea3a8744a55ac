"""`roles_of` and `user_groups` cache their answer on the user instance. Every directory
command that changes what they read (groups, the superuser flag, the active flag) leaves
the instance it was given reporting the user as the database has it now."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from directory import services
from directory.roles import role_group_name, roles_of, user_groups
from tests import factories

pytestmark = pytest.mark.django_db
User = get_user_model()


def group_names(user) -> set[str]:
    return {name for _, name in user_groups(user)}


def fill_caches(user) -> None:
    roles_of(user)
    user_groups(user)


def test_group_change_is_seen_by_the_same_instance(alice):
    fill_caches(alice)
    assert roles_of(alice) == {"worker"}
    team_b, supervisors = factories.group("team-b"), factories.group(role_group_name("supervisor"))

    services.user_set_groups(actor=None, user=alice, groups=[team_b, supervisors])

    assert roles_of(alice) == {"supervisor"}
    assert group_names(alice) == {"team-b", role_group_name("supervisor")}


def test_superuser_flag_is_seen_by_the_same_instance(alice):
    fill_caches(alice)

    services.user_update(actor=None, user=alice, is_superuser=True)
    assert alice.is_superuser
    assert roles_of(alice) == {"worker", "admin"}

    services.user_update(actor=None, user=alice, is_superuser=False)
    assert not alice.is_superuser
    assert roles_of(alice) == {"worker"}


def test_activation_reports_the_groups_as_they_are_now(alice):
    """The groups changed while the account was inactive, through another copy of the user
    (the directory sync's, another admin page): activating this instance shows them."""
    fill_caches(alice)
    services.user_deactivate(actor=None, user=alice)
    assert roles_of(alice) == frozenset()
    fill_caches(alice)
    other_copy = User.objects.get(pk=alice.pk)
    services.user_set_groups(actor=None, user=other_copy, groups=[factories.group(role_group_name("supervisor"))])

    services.user_activate(actor=None, user=alice)

    assert alice.is_active
    assert roles_of(alice) == {"supervisor"}
    assert group_names(alice) == {role_group_name("supervisor")}


def test_deactivation_reports_the_groups_as_they_are_now(alice):
    fill_caches(alice)
    other_copy = User.objects.get(pk=alice.pk)
    services.user_set_groups(actor=None, user=other_copy, groups=[factories.group("team-b")])

    services.user_deactivate(actor=None, user=alice)

    assert not alice.is_active
    assert roles_of(alice) == frozenset()
    assert group_names(alice) == {"team-b"}
