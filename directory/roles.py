"""Platform roles (admin, supervisor, worker, service), held through Django groups
whose names come from the configuration (`roles:`), so that directory groups map
straight onto them. A superuser is an admin."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import F, OuterRef
from django.db.models.functions import JSONObject

from config import wsconfig

ADMIN, SUPERVISOR, WORKER, SERVICE = "admin", "supervisor", "worker", "service"
ROLES = (ADMIN, SUPERVISOR, WORKER, SERVICE)
SYSTEM = "system"  # the pseudo-role of actor=None: Celery jobs, distribution, the SLA scan


def role_group_name(role: str) -> str:
    return wsconfig.get().roles[role]


def roles_of(user: AbstractBaseUser | AnonymousUser | None) -> frozenset[str]:
    """The platform roles `user` holds now (cached on the instance for the request)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_workstream_roles", None)
    if cached is not None:
        return cached
    by_group = {name: role for role, name in wsconfig.get().roles.as_dict().items()}
    roles = {by_group[name] for _, name in user_groups(user) if name in by_group}
    if user.is_superuser:
        roles.add(ADMIN)
    result = frozenset(roles)
    user._workstream_roles = result
    return result


def user_groups(user) -> list[tuple[int, str]]:
    """(id, name) of the user's groups, read once per request (cached on the instance)."""
    cached = getattr(user, "_workstream_groups", None)
    if cached is None:
        cached = list(user.groups.values_list("id", "name"))
        user._workstream_groups = cached
    return cached


def with_groups(users, user_ref: str = "pk"):
    """`users` (a queryset of users, or of rows pointing at one through `user_ref`) with each
    user's (id, name) groups read in the same statement, for `remember_groups` (PostgreSQL;
    elsewhere unchanged, and `user_groups` reads them when first asked)."""
    if connection.vendor != "postgresql":
        return users
    rows = Group.objects.filter(user=OuterRef(user_ref)).order_by("id").values(j=JSONObject(id=F("id"), name=F("name")))
    return users.annotate(_group_rows=ArraySubquery(rows))


def remember_groups(user, carrier=None) -> None:
    """Keep the groups `with_groups` read (on `user`, or on the `carrier` row that pointed at it)
    as the request's cache of `user_groups`, so no statement of its own reads them."""
    rows = (carrier or user).__dict__.pop("_group_rows", None)
    if rows is not None:
        user._workstream_groups = [(r["id"], r["name"]) for r in rows]


def forget_cached_roles(user) -> None:
    """Drop the per-instance caches of `roles_of` and `user_groups` after what they read (the
    user's groups, superuser or active flag) changed; the directory commands call it."""
    for attr in ("_workstream_roles", "_workstream_groups"):
        user.__dict__.pop(attr, None)
