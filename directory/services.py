"""Directory commands: every change to departments, profiles, availability, roles, role
assignments, group memberships and accounts is one function here that changes the rows
and writes its audit record in the same transaction.

Audit streams: `user:<id>` (account, profile, availability, groups), `department:<id>`,
`role:<id>`, `roleassignment:<id>`, `group:<id>`. The entity's row is locked before its
record is written, so a stream's order is the order of its changes.

Permission checks: the API-facing commands (availability) check the actor here; the
others are reached only through the admin (Django model permissions), the directory
sync and management commands (actor None = the system).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record
from config.timefmt import isoformat_z
from directory.models import Department, PlatformRoleGrant, Profile, Role, RoleAssignment
from directory.roles import ADMIN, ROLES, forget_cached_roles, role_group_name, roles_of
from directory.selectors import out_of_office_q
from workitems import schemas
from workitems.errors import Conflict, NotAllowed, ValidationFailed
from workitems.policy import delegate_refusal, is_supervisor
from workitems.services import absence, moves

User = get_user_model()


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Marks an argument the caller did not pass (None is a value: "clear it")."""

USER_FIELDS = ("first_name", "last_name", "email", "is_staff", "is_superuser")
MAX_SKILLS = 100


# --- helpers ---------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Audit data is stored as JSON and re-hashed on verify: keep it JSON-native."""
    if isinstance(value, datetime):
        return isoformat_z(value)
    if isinstance(value, User):
        return value.username
    if isinstance(value, Department | Role):
        return value.code
    if isinstance(value, Group):
        return value.name
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [_jsonable(before[k]), _jsonable(after[k])] for k in after if before.get(k) != after[k]}


def _lock_user(user) -> Any:
    """Lock the user's row: it orders the `user:<id>` audit stream."""
    return User.objects.select_for_update().get(pk=user.pk)


def _caller_copy_is_current(user, locked, fields=()) -> None:
    """Leave the caller's instance reporting the change: the changed `fields` copied from the
    locked copy, and the role and group caches of directory.roles dropped."""
    for field in fields:
        setattr(user, field, getattr(locked, field))
    forget_cached_roles(user)


def _locked_profile(user) -> Profile:
    profile = Profile.objects.select_for_update().filter(user_id=user.pk).first()
    if profile is None:
        profile = Profile.objects.create(user_id=user.pk)
    return profile


def _audit_user(user, action: str, actor, data: dict) -> None:
    audit_record(stream=f"user:{user.pk}", action=action, actor=actor, data=_jsonable(data))


def _may_manage_people(actor) -> bool:
    """The system, superusers, supervisors/admins, and staff allowed to change profiles."""
    if actor is None or actor.is_superuser or is_supervisor(actor):
        return True
    return bool(actor.is_staff and actor.has_perm("directory.change_profile"))


def _hand_over(user, reason: str) -> None:
    """Move `user`'s held items on (to their delegate or back through distribution), each in its own savepoint."""
    absence.work_items_hand_over(user=user, reason=reason)


def _take_back(user) -> None:
    """Give a returning user back the items moved away during their absence that nobody touched since."""
    absence.work_items_return_to(user=user)


def validate_skills(skills: Any, field: str = "skills") -> dict[str, int]:
    """`{"name": level}` with levels 1–10; ValidationFailed lists every bad entry."""
    if not isinstance(skills, dict):
        raise ValidationFailed([{"field": field, "message": 'must be an object such as {"german": 7}'}])
    errors = []
    if len(skills) > MAX_SKILLS:
        errors.append({"field": field, "message": f"at most {MAX_SKILLS} skills"})
    for name, level in skills.items():
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            errors.append({"field": field, "message": f"skill name {name!r} must be 1–100 characters"})
        elif not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 10:
            errors.append({"field": f"{field}.{name}", "message": "level must be an integer from 1 to 10"})
    if errors:
        raise ValidationFailed(errors)
    return {name.strip(): level for name, level in skills.items()}


# --- departments -----------------------------------------------------------------------


def _check_parent(department: Department | None, parent: Department | None) -> None:
    seen = set()
    node = parent
    while node is not None:
        if department is not None and node.pk == department.pk:
            raise ValidationFailed([{"field": "parent", "message": "a department cannot be its own ancestor"}])
        if node.pk in seen:  # a cycle already in the data: stop rather than loop
            break
        seen.add(node.pk)
        node = node.parent


@transaction.atomic
def department_create(
    *,
    actor,
    code: str,
    name: str,
    parent: Department | None = None,
    manager=None,
    external_id: str = "",
) -> Department:
    """Create a department (optionally under `parent`)."""
    if Department.objects.filter(code=code).exists():
        raise ValidationFailed([{"field": "code", "message": f"department {code!r} already exists"}])
    department = Department(code=code, name=name, parent=parent, manager=manager, external_id=external_id)
    department.full_clean()
    department.save()
    audit_record(
        stream=f"department:{department.pk}",
        action="department.created",
        actor=actor,
        data=_jsonable({"code": code, "name": name, "parent": parent, "manager": manager, "external_id": external_id}),
    )
    return department


@transaction.atomic
def department_update(*, actor, department: Department, **changes: Any) -> Department:
    """Change a department's code, name, parent, manager or external id (no cycles in the tree)."""
    allowed = {"code", "name", "parent", "manager", "external_id"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValidationFailed([{"field": k, "message": "unknown field"} for k in unknown])
    dept = Department.objects.select_for_update().get(pk=department.pk)
    if "parent" in changes:
        _check_parent(dept, changes["parent"])
    before = {k: getattr(dept, k) for k in changes}
    for key, value in changes.items():
        setattr(dept, key, value)
    diff = _changes(before, changes)
    if not diff:
        return dept
    dept.full_clean()
    dept.save(update_fields=[k for k in changes if k in diff])
    audit_record(stream=f"department:{dept.pk}", action="department.updated", actor=actor, data=diff)
    return dept


@transaction.atomic
def department_delete(*, actor, department: Department) -> None:
    """Delete a department without sub-departments; its members are left without one."""
    dept = Department.objects.select_for_update().get(pk=department.pk)
    if dept.children.exists():
        raise ValidationFailed([{"field": "parent", "message": f"department {dept.code} still has sub-departments"}])
    members = list(dept.members.values_list("user__username", flat=True))
    audit_record(
        stream=f"department:{dept.pk}",
        action="department.deleted",
        actor=actor,
        data={"code": dept.code, "name": dept.name, "members": members},
    )
    dept.delete()


# --- accounts ----------------------------------------------------------------------------


@transaction.atomic
def user_create(*, actor, user, groups=(), profile: dict | None = None, source: str = "") -> Any:
    """Save a new (unsaved) user with its profile; `source` says where it came from (admin, ldap…)."""
    if user.pk is not None:
        raise ValueError("user_create takes an unsaved user")
    user.save()
    values = dict(profile or {})
    if "skills" in values:
        values["skills"] = validate_skills(values["skills"])
    Profile.objects.create(user=user, **values)
    if groups:  # a new user has no groups yet: one INSERT, not set()'s read-then-write
        through = User.groups.through
        through.objects.bulk_create([through(user_id=user.pk, group_id=g.pk) for g in groups])
    _audit_user(
        user,
        "user.created",
        actor,
        {
            "username": user.username,
            "source": source,
            "is_active": user.is_active,
            **{f: getattr(user, f) for f in USER_FIELDS if getattr(user, f)},
            **{k: v for k, v in values.items() if v not in (None, "", {})},
            "groups": sorted(g.name for g in groups),
        },
    )
    return user


@transaction.atomic
def user_update(*, actor, user, source: str = "", **changes: Any) -> Any:
    """Change a user's username, names, email, staff or superuser flag (activation has its own commands)."""
    unknown = sorted(set(changes) - {"username", *USER_FIELDS})
    if unknown:
        raise ValidationFailed([{"field": k, "message": "unknown field"} for k in unknown])
    locked = _lock_user(user)
    before = {k: getattr(locked, k) for k in changes}
    diff = _changes(before, changes)
    if not diff:
        return locked
    for key in diff:
        setattr(locked, key, changes[key])
    locked.save(update_fields=list(diff))
    _caller_copy_is_current(user, locked, diff)
    _audit_user(locked, "user.updated", actor, {"changes": diff, **({"source": source} if source else {})})
    return locked


@transaction.atomic
def user_deactivate(*, actor, user, reason: str = "", source: str = "") -> Any:
    """Deactivate an account and send its held items back through distribution.
    `source` "directory" marks the sync's own deactivations (it may undo only those)."""
    locked = _lock_user(user)
    if not locked.is_active:
        return locked
    locked.is_active = False
    locked.save(update_fields=["is_active"])
    _caller_copy_is_current(user, locked, ["is_active"])
    _audit_user(locked, "user.deactivated", actor, {"reason": reason, **({"source": source} if source else {})})
    _hand_over(locked, "deactivated")
    return locked


@transaction.atomic
def user_activate(*, actor, user, reason: str = "") -> Any:
    """Re-activate an account."""
    locked = _lock_user(user)
    if locked.is_active:
        return locked
    locked.is_active = True
    locked.save(update_fields=["is_active"])
    _caller_copy_is_current(user, locked, ["is_active"])
    _audit_user(locked, "user.activated", actor, {"reason": reason})
    return locked


@transaction.atomic
def user_set_groups(*, actor, user, groups, source: str = "") -> tuple[list[str], list[str]]:
    """Make `user`'s Django groups exactly `groups`; returns (added, removed) names."""
    locked = _lock_user(user)
    target = {g.pk: g for g in groups}
    current = dict(locked.groups.values_list("pk", "name"))
    # a temporary platform role's group stays while its grant is in force (it ends with it)
    target.update({pk: Group(pk=pk, name=current[pk]) for pk in granted_group_ids(locked) if pk in current})
    added = sorted(target[pk].name for pk in set(target) - set(current))
    removed = sorted(current[pk] for pk in set(current) - set(target))
    if not added and not removed:
        return [], []
    through = User.groups.through
    if removed:
        through.objects.filter(user_id=locked.pk, group_id__in=set(current) - set(target)).delete()
    if added:
        through.objects.bulk_create(
            [through(user_id=locked.pk, group_id=pk) for pk in set(target) - set(current)], ignore_conflicts=True
        )
    _caller_copy_is_current(user, locked)
    data = {"added": added, "removed": removed}
    if source:
        data["source"] = source
    _audit_user(locked, "user.groups_changed", actor, data)
    return added, removed


@transaction.atomic
def record_user_created(*, actor, user, source: str, groups=()) -> None:
    """Audit a user that django-auth-ldap created at login (the library saves the row itself,
    inside the login's transaction) and give it its profile."""
    locked = _lock_user(user)
    _locked_profile(locked)
    _audit_user(
        locked,
        "user.created",
        actor,
        {
            "username": locked.username,
            "source": source,
            "is_active": locked.is_active,
            **{f: getattr(locked, f) for f in USER_FIELDS if getattr(locked, f)},
            "groups": sorted(groups),
        },
    )


@transaction.atomic
def record_login_changes(*, actor, user, changes: dict, added=(), removed=()) -> None:
    """Audit what django-auth-ldap changed at login (names, email, mirrored groups)."""
    locked = _lock_user(user)
    _audit_user(
        locked,
        "user.updated",
        actor,
        {"source": "ldap-login", "changes": changes, "groups_added": list(added), "groups_removed": list(removed)},
    )


@transaction.atomic
def group_create(*, actor, name: str, source: str = "") -> Group:
    """Create a Django group (a team, a platform role, a mirrored directory group)."""
    group = Group.objects.create(name=name)
    audit_record(stream=f"group:{group.pk}", action="group.created", actor=actor, data={"name": name, "source": source})
    return group


# --- profile and availability ------------------------------------------------------------


@transaction.atomic
def profile_update(
    *,
    actor,
    user,
    department: Department | None = UNSET,
    skills: dict | None = UNSET,
    capacity: int | None = UNSET,
    external_id: str = UNSET,
    source: str = "",
) -> Profile:
    """Change a user's department, skills (levels 1–10), personal capacity or directory id."""
    locked = _lock_user(user)
    profile = _locked_profile(locked)
    changes: dict[str, Any] = {}
    if department is not UNSET:
        changes["department"] = department
    if skills is not UNSET:
        changes["skills"] = validate_skills(skills or {})
    if capacity is not UNSET:
        if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0):
            raise ValidationFailed([{"field": "capacity", "message": "must be empty or a whole number ≥ 0"}])
        changes["capacity"] = capacity
    if external_id is not UNSET:
        changes["external_id"] = external_id or ""
    before = {k: getattr(profile, k) for k in changes}
    diff = _changes(before, changes)
    if not diff:
        return profile
    for key in diff:
        setattr(profile, key, changes[key])
    profile.save(update_fields=list(diff))
    _audit_user(locked, "user.profile_updated", actor, {"changes": diff, **({"source": source} if source else {})})
    if "capacity" in diff:  # a lower capacity: their not-yet-started excess goes back to distribution
        moves.work_items_redistribute_over_capacity(user=locked, reason="capacity lowered")
    return profile


def _check_delegate(user, delegate, start: datetime) -> None:
    if delegate is None:
        return
    if delegate.pk == user.pk:
        raise ValidationFailed([{"field": "delegate", "message": "a user cannot be their own delegate"}])
    refusal = delegate_refusal(user, delegate)  # an active person sharing a team with the user
    if refusal is not None:
        raise ValidationFailed([{"field": "delegate", "message": refusal}])
    theirs = Profile.objects.filter(user_id=delegate.pk).first()
    if theirs is not None and theirs.is_out_of_office(start) and theirs.delegate_id == user.pk:
        raise ValidationFailed(
            [{"field": "delegate", "message": f"{delegate.username} is away then and delegates to {user.username}"}]
        )


@transaction.atomic
def availability_set(
    *,
    actor,
    user,
    out_of_office_from: datetime | None = None,
    out_of_office_until: datetime | None = None,
    delegate=None,
    at: datetime | None = None,
) -> Profile:
    """Mark `user` out of office from `out_of_office_from` (default now) until `out_of_office_until`
    (open-ended if None), with an optional delegate. If the absence has begun, held items are
    handed back to distribution now; a later start is handed over by `availability_sweep`."""
    if actor is not None and actor.pk != user.pk and not _may_manage_people(actor):
        raise NotAllowed("only the user themself or a supervisor may change availability")
    now = at or timezone.now()
    start = out_of_office_from or now
    schemas.check_time_range(out_of_office_from, "out_of_office_from")
    schemas.check_time_range(out_of_office_until, "out_of_office_until")
    errors = []
    if out_of_office_until is not None and out_of_office_until <= start:
        errors.append({"field": "out_of_office_until", "message": "must be after out_of_office_from"})
    elif out_of_office_until is not None and out_of_office_until <= now:
        errors.append({"field": "out_of_office_until", "message": "must be in the future"})
    if errors:
        raise ValidationFailed(errors)
    locked = _lock_user(user)
    if delegate is not None:
        delegate = User.objects.get(pk=delegate.pk)  # fresh is_active
    _check_delegate(locked, delegate, start)
    profile = _locked_profile(locked)
    before = {
        "out_of_office_from": profile.out_of_office_from,
        "out_of_office_until": profile.out_of_office_until,
        "delegate": profile.delegate,
    }
    after = {"out_of_office_from": start, "out_of_office_until": out_of_office_until, "delegate": delegate}
    diff = _changes(before, after)
    if not diff:
        return profile
    profile.out_of_office_from = start
    profile.out_of_office_until = out_of_office_until
    profile.delegate = delegate
    fields = ["out_of_office_from", "out_of_office_until", "delegate"]
    begun = start <= now
    if begun and profile.out_of_office_handled_from != start:
        profile.out_of_office_handled_from = start
        fields.append("out_of_office_handled_from")
    profile.save(update_fields=fields)
    _audit_user(locked, "user.out_of_office", actor, {"changes": diff, "begun": begun})
    if "out_of_office_handled_from" in fields:
        _hand_over(locked, "out_of_office")
    return profile


@transaction.atomic
def availability_clear(*, actor, user) -> Profile:
    """Mark `user` available again (no absence, no delegate)."""
    if actor is not None and actor.pk != user.pk and not _may_manage_people(actor):
        raise NotAllowed("only the user themself or a supervisor may change availability")
    locked = _lock_user(user)
    profile = _locked_profile(locked)
    if profile.out_of_office_from is None and profile.delegate_id is None:
        return profile
    was_away = profile.out_of_office_handled_from is not None
    before = {
        "out_of_office_from": profile.out_of_office_from,
        "out_of_office_until": profile.out_of_office_until,
        "delegate": profile.delegate,
    }
    profile.out_of_office_from = profile.out_of_office_until = profile.delegate = None
    profile.out_of_office_handled_from = None
    profile.save(update_fields=["out_of_office_from", "out_of_office_until", "delegate", "out_of_office_handled_from"])
    after = {"out_of_office_from": None, "out_of_office_until": None, "delegate": None}
    _audit_user(locked, "user.available", actor, {"changes": _changes(before, after)})
    if was_away:
        _take_back(locked)
    return profile


def availability_sweep(*, at: datetime | None = None) -> int:
    """Hand over the held items of users whose scheduled absence has begun (once per absence),
    and bring back those whose scheduled absence has ended: a return at `out_of_office_until`
    is the explicit return (`availability_clear` by the system), so it restores exactly the same.

    Run by Celery beat every minute; each user is its own transaction. Returns how many
    absences began or ended.
    """
    now = at or timezone.now()
    ended = Profile.objects.filter(out_of_office_handled_from__isnull=False, out_of_office_until__lte=now)
    returned = 0
    for user_id in list(ended.values_list("user_id", flat=True)):
        with transaction.atomic():
            profile = _locked_profile(User.objects.select_for_update().get(pk=user_id))
            # Re-check under the lock: the absence may have been cleared or extended meanwhile.
            if profile.out_of_office_handled_from is None or profile.is_out_of_office(now):
                continue
            availability_clear(actor=None, user=profile.user)
            returned += 1
    due = (
        Profile.objects.filter(out_of_office_q(now, prefix=""), user__is_active=True)
        .exclude(out_of_office_handled_from=F("out_of_office_from"))
        .values_list("user_id", flat=True)
    )
    handed = 0
    for user_id in list(due):
        with transaction.atomic():
            locked = User.objects.select_for_update().get(pk=user_id)
            profile = _locked_profile(locked)
            # Re-check under the lock: the absence may have been cleared or handled meanwhile.
            if not profile.is_out_of_office(now) or profile.out_of_office_handled_from == profile.out_of_office_from:
                continue
            profile.out_of_office_handled_from = profile.out_of_office_from
            profile.save(update_fields=["out_of_office_handled_from"])
            _audit_user(locked, "user.out_of_office_begun", None, {"from": profile.out_of_office_from})
            _hand_over(locked, "out_of_office")
            handed += 1
    return handed + returned


# --- roles and role assignments ------------------------------------------------------------


def _role_snapshot(role: Role) -> dict:
    return {
        "code": role.code,
        "name": role.name,
        "description": role.description,
        "actions": list(role.actions or []),
        "queues": sorted(role.queues.values_list("name", flat=True)) if role.pk else [],
    }


def _validate_actions(actions: Any) -> list[str]:
    if not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions):
        raise ValidationFailed([{"field": "actions", "message": 'must be a list of action names, e.g. ["claim"]'}])
    return actions


@transaction.atomic
def role_create(*, actor, code: str, name: str, description: str = "", actions=(), queues=()) -> Role:
    """Create a business role: the queues it grants and the actions it allows there."""
    role = Role(code=code, name=name, description=description, actions=_validate_actions(list(actions)))
    role.full_clean()
    role.save()
    role.queues.set(queues)
    audit_record(stream=f"role:{role.pk}", action="role.created", actor=actor, data=_role_snapshot(role))
    return role


@transaction.atomic
def role_update(*, actor, role: Role, queues=UNSET, **changes: Any) -> Role:
    """Change a role's code, name, description, actions or queues."""
    allowed = {"code", "name", "description", "actions"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValidationFailed([{"field": k, "message": "unknown field"} for k in unknown])
    locked = Role.objects.select_for_update().get(pk=role.pk)
    before = _role_snapshot(locked)
    if "actions" in changes:
        _validate_actions(changes["actions"])
    for key, value in changes.items():
        setattr(locked, key, value)
    locked.full_clean()
    locked.save()
    if queues is not UNSET:
        locked.queues.set(queues)
    after = _role_snapshot(locked)
    diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if diff:
        audit_record(stream=f"role:{locked.pk}", action="role.updated", actor=actor, data=diff)
    return locked


@transaction.atomic
def role_delete(*, actor, role: Role) -> None:
    """Delete a role and (cascading) its assignments."""
    locked = Role.objects.select_for_update().get(pk=role.pk)
    data = _role_snapshot(locked)
    data["assignments"] = locked.assignments.count()
    audit_record(stream=f"role:{locked.pk}", action="role.deleted", actor=actor, data=data)
    locked.delete()


def _assignment_snapshot(a: RoleAssignment) -> dict:
    return _jsonable(
        {
            "user": a.user,
            "role": a.role,
            "valid_from": a.valid_from,
            "valid_to": a.valid_to,
            "granted_by": a.granted_by,
            "reason": a.reason,
        }
    )


def _check_validity(valid_from: datetime, valid_to: datetime | None) -> None:
    if valid_to is not None and valid_to <= valid_from:
        raise ValidationFailed([{"field": "valid_to", "message": "must be after valid_from"}])


@transaction.atomic
def role_assignment_grant(
    *,
    actor,
    user,
    role: Role,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    reason: str = "",
) -> RoleAssignment:
    """Give `user` the role from `valid_from` (default now) until `valid_to` (open-ended if None)."""
    start = valid_from or timezone.now()
    _check_validity(start, valid_to)
    _lock_user(user)
    assignment = RoleAssignment.objects.create(
        user=user, role=role, valid_from=start, valid_to=valid_to, granted_by=actor, reason=reason or ""
    )
    audit_record(
        stream=f"roleassignment:{assignment.pk}",
        action="roleassignment.granted",
        actor=actor,
        data=_assignment_snapshot(assignment),
    )
    return assignment


@transaction.atomic
def role_assignment_update(
    *, actor, assignment: RoleAssignment, valid_from=UNSET, valid_to=UNSET, reason=UNSET
) -> RoleAssignment:
    """Move an assignment's validity window or change its reason."""
    locked = RoleAssignment.objects.select_for_update().get(pk=assignment.pk)
    before = _assignment_snapshot(locked)
    if valid_from is not UNSET:
        locked.valid_from = valid_from
    if valid_to is not UNSET:
        locked.valid_to = valid_to
    if reason is not UNSET:
        locked.reason = reason or ""
    _check_validity(locked.valid_from, locked.valid_to)
    after = _assignment_snapshot(locked)
    diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if not diff:
        return locked
    locked.save(update_fields=["valid_from", "valid_to", "reason"])
    audit_record(stream=f"roleassignment:{locked.pk}", action="roleassignment.updated", actor=actor, data=diff)
    return locked


@transaction.atomic
def role_assignment_revoke(
    *, actor, assignment: RoleAssignment, reason: str = "", at: datetime | None = None
) -> RoleAssignment | None:
    """End an assignment now (kept, with `valid_to` set, for the record); one that has not
    begun yet is deleted. Returns the assignment, or None when it was deleted."""
    now = at or timezone.now()
    locked = RoleAssignment.objects.select_for_update().get(pk=assignment.pk)
    if locked.valid_to is not None and locked.valid_to <= now:
        return locked  # already over
    data = {**_assignment_snapshot(locked), "revoked_at": _jsonable(now), "revoke_reason": reason}
    if locked.valid_from >= now:
        audit_record(stream=f"roleassignment:{locked.pk}", action="roleassignment.deleted", actor=actor, data=data)
        locked.delete()
        return None
    locked.valid_to = now
    locked.save(update_fields=["valid_to"])
    audit_record(stream=f"roleassignment:{locked.pk}", action="roleassignment.revoked", actor=actor, data=data)
    return locked


@transaction.atomic
def role_assignment_delete(*, actor, assignment: RoleAssignment) -> None:
    """Remove an assignment entirely (a mistake, not an ending: revoke ends one and keeps it)."""
    locked = RoleAssignment.objects.select_for_update().get(pk=assignment.pk)
    audit_record(
        stream=f"roleassignment:{locked.pk}",
        action="roleassignment.deleted",
        actor=actor,
        data=_assignment_snapshot(locked),
    )
    locked.delete()


# --- temporary platform roles ---------------------------------------------------------------

MAX_GRANT = timedelta(days=366)


def _grant_snapshot(g: PlatformRoleGrant) -> dict:
    return _jsonable(
        {
            "role": g.role,
            "valid_from": g.valid_from,
            "valid_to": g.valid_to,
            "granted_by": g.granted_by,
            "reason": g.reason,
        }
    )


@transaction.atomic
def platform_role_grant(
    *, actor, user, role: str, valid_to: datetime, valid_from: datetime | None = None, reason: str = ""
) -> PlatformRoleGrant:
    """Grant `user` the platform role `role` from `valid_from` (default now) until `valid_to`
    (at most a year later): admins only. In force at once when it starts now; audited on the
    user's stream. The membership follows in platform_role_grants_apply (run here for this user,
    then by beat every minute)."""
    if actor is not None and ADMIN not in roles_of(actor):
        raise NotAllowed("only admins may grant platform roles")
    start = valid_from or timezone.now()
    if role not in ROLES:
        raise ValidationFailed([{"field": "role", "message": f"one of {', '.join(ROLES)}"}])
    if not isinstance(valid_to, datetime):
        raise ValidationFailed([{"field": "valid_to", "message": "when the grant ends (a date-time)"}])
    # well-formed times that do not make a grant: a conflict with the clock, not bad input (409)
    if valid_to <= max(start, timezone.now()):
        raise Conflict("valid_to: a grant ends after it begins and after now")
    if valid_to - start > MAX_GRANT:
        raise Conflict(f"valid_to: a grant lasts at most {MAX_GRANT.days} days")
    locked = _lock_user(user)
    grant = PlatformRoleGrant.objects.create(
        user=locked, role=role, valid_from=start, valid_to=valid_to, granted_by=actor, reason=reason or ""
    )
    _audit_user(locked, "user.role_granted", actor, {"grant": grant.pk, **_grant_snapshot(grant)})
    _apply_grants_of(locked, timezone.now())
    _caller_copy_is_current(user, locked)
    grant.refresh_from_db()
    return grant


@transaction.atomic
def platform_role_revoke(*, actor, grant: PlatformRoleGrant, reason: str = "") -> PlatformRoleGrant:
    """End a grant now (kept, `valid_to` set to now, for the record); admins only."""
    if actor is not None and ADMIN not in roles_of(actor):
        raise NotAllowed("only admins may revoke platform roles")
    locked_user = _lock_user(grant.user)
    locked = PlatformRoleGrant.objects.select_for_update().get(pk=grant.pk)
    now = timezone.now()
    if locked.ended or locked.valid_to <= now:
        return locked
    locked.valid_to = max(now, locked.valid_from + timedelta(microseconds=1))
    locked.save(update_fields=["valid_to"])
    _audit_user(locked_user, "user.role_revoked", actor, {"grant": locked.pk, "role": locked.role, "reason": reason})
    _apply_grants_of(locked_user, locked.valid_to)
    _caller_copy_is_current(grant.user, locked_user)
    locked.refresh_from_db()
    return locked


def _apply_grants_of(user, now: datetime) -> int:
    """End the user's grants that are over and start those that are due (the user row locked).
    The membership a grant made passes to a grant of the same role still in force (its heir),
    so it ends with the last of them; one the user held before any grant is never removed."""
    through = User.groups.through
    grants = list(
        PlatformRoleGrant.objects.select_for_update()
        .filter(user=user, ended=False, valid_from__lte=now)
        .order_by("valid_from", "id")
    )
    live = [g for g in grants if g.valid_to > now]
    inherited = set()
    changed = 0
    for grant in (g for g in grants if g.valid_to <= now):
        group, _ = Group.objects.get_or_create(name=role_group_name(grant.role))
        heir = next((h for h in live if h.role == grant.role), None)
        removed = grant.added and heir is None
        if grant.added and heir is not None and not heir.added:
            heir.added = True
            inherited.add(heir.pk)
        if removed:
            through.objects.filter(user_id=user.pk, group_id=group.pk).delete()
        grant.ended = True
        grant.save(update_fields=["ended"])
        data = {"grant": grant.pk, "role": grant.role, "group": group.name, "membership_removed": removed}
        _audit_user(user, "user.role_grant_ended", None, data)
        changed += 1
    for grant in live:
        if grant.started:
            if grant.pk in inherited:
                grant.save(update_fields=["added"])
            continue
        group, _ = Group.objects.get_or_create(name=role_group_name(grant.role))
        member = through.objects.filter(user_id=user.pk, group_id=group.pk).exists()
        if not member:
            through.objects.create(user_id=user.pk, group_id=group.pk)
        grant.started, grant.added = True, grant.added or not member
        grant.save(update_fields=["started", "added"])
        _audit_user(user, "user.role_grant_started", None, {"grant": grant.pk, "role": grant.role, "group": group.name})
        changed += 1
    forget_cached_roles(user)
    return changed


def platform_role_grants_apply(*, at: datetime | None = None) -> int:
    """Start the grants that are due and end those that are over, each user in its own
    transaction (beat, every minute; a grant also applies when it is made or revoked). Returns
    how many grants started or ended."""
    now = at or timezone.now()
    due = PlatformRoleGrant.objects.filter(ended=False, valid_from__lte=now).filter(
        Q(started=False) | Q(valid_to__lte=now)
    )
    changed = 0
    for user_id in sorted(set(due.values_list("user_id", flat=True))):
        with transaction.atomic():
            changed += _apply_grants_of(_lock_user(User(pk=user_id)), now)
    return changed


def granted_group_ids(user, at: datetime | None = None) -> set[int]:
    """The groups `user` is a member of because a grant in force made it so (a directory sync
    keeps them: user_set_groups)."""
    names = [
        role_group_name(r)
        for r in PlatformRoleGrant.objects.in_force(at)
        .filter(user=user, started=True, added=True)
        .values_list("role", flat=True)
    ]
    return set(Group.objects.filter(name__in=names).values_list("pk", flat=True)) if names else set()
