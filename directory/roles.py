"""Platform roles (admin, supervisor, worker, service), held through Django groups
whose names come from the configuration (`roles:`), so that directory groups map
straight onto them. A superuser is an admin."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

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


def forget_cached_roles(user) -> None:
    """Drop the per-instance caches of `roles_of` and `user_groups` after what they read (the
    user's groups, superuser or active flag) changed; the directory commands call it."""
    for attr in ("_workstream_roles", "_workstream_groups"):
        user.__dict__.pop(attr, None)
