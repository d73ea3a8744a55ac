"""Directory reads, with visibility built in.

Who sees whom: admins, supervisors and service clients see every user and group.
A worker sees themself and the users who share a team with them: a Django group
other than the platform-role groups (everyone is in `workstream-workers`, so that
one does not count). Those are the people a worker can pick as a delegate or
hand work to. Departments and roles (the catalogue) are visible to every
authenticated caller. What one may not see does not exist for it (404).
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from config import wsconfig
from directory.models import Department, Role, RoleAssignment
from workitems.errors import NotFound
from workitems.models import HELD_STATES
from workitems.policy import sees_everything

User = get_user_model()


def role_group_names() -> list[str]:
    return list(wsconfig.get().roles.as_dict().values())


def team_group_ids(actor) -> list[int]:
    """The actor's groups that are teams (not platform-role groups)."""
    return list(actor.groups.exclude(name__in=role_group_names()).values_list("id", flat=True))


def user_list_for(*, actor, at: datetime | None = None) -> QuerySet:
    """Users `actor` may see, with profile, groups, current role assignments and load attached."""
    at = at or timezone.now()
    qs = User.objects.all()
    if not sees_everything(actor):
        if actor is None or not actor.is_authenticated:
            return qs.none()
        qs = qs.filter(Q(pk=actor.pk) | Q(groups__in=team_group_ids(actor))).distinct()
    return qs.select_related("workstream_profile__department", "workstream_profile__delegate").prefetch_related(
        Prefetch("groups", queryset=Group.objects.order_by("name")),
        Prefetch(
            "role_assignments",
            queryset=RoleAssignment.objects.valid_at(at).select_related("role").order_by("valid_from", "id"),
            to_attr="current_role_assignments",
        ),
    )


def out_of_office_q(at: datetime, prefix: str = "workstream_profile__") -> Q:
    """Users (or, with prefix "", profiles) whose absence is in effect at `at`."""
    return Q(**{f"{prefix}out_of_office_from__lte": at}) & (
        Q(**{f"{prefix}out_of_office_until__isnull": True}) | Q(**{f"{prefix}out_of_office_until__gt": at})
    )


def with_load(qs: QuerySet) -> QuerySet:
    """Annotate `load`: the open items each user holds (assigned, in progress, suspended)."""
    return qs.annotate(load=Count("assigned_work_items", filter=Q(assigned_work_items__state__in=HELD_STATES)))


def user_get_for(*, actor, username: str, at: datetime | None = None):
    """One user `actor` may see; NotFound otherwise."""
    user = with_load(user_list_for(actor=actor, at=at)).filter(username=username).first()
    if user is None:
        raise NotFound(f"user {username!r} not found")
    return user


def group_list_for(*, actor) -> QuerySet[Group]:
    """Every group for admins, supervisors and services; a worker's own groups otherwise."""
    qs = Group.objects.annotate(member_count=Count("user", distinct=True))
    if sees_everything(actor):
        return qs
    if actor is None or not actor.is_authenticated:
        return qs.none()
    return qs.filter(pk__in=actor.groups.values("pk"))


def department_list() -> QuerySet[Department]:
    return Department.objects.select_related("parent", "manager").annotate(member_count=Count("members"))


def role_list(*, at: datetime | None = None) -> QuerySet[Role]:
    """Roles with their queues and the number of assignments valid at `at` (now)."""
    at = at or timezone.now()
    valid = Q(assignments__valid_from__lte=at) & (
        Q(assignments__valid_to__isnull=True) | Q(assignments__valid_to__gt=at)
    )
    return Role.objects.prefetch_related("queues").annotate(
        holders=Count("assignments__user", filter=valid, distinct=True)
    )
