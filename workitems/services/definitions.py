"""Definition commands: create and change queues, lifecycle definitions and business calendars
(admins). Each change is validated, applied and audited (stream `queue:<id>` /
`lifecycle:<id>` / `calendar:<id>`, with the before and after) in one transaction; the REST
API and the admin call these."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction

from audit.services import audit_record
from config import wsconfig
from directory.models import Department
from directory.roles import ADMIN, ROLES, roles_of
from distribution.strategies import queue_strategy_choices
from notifications.schemas import channels_errors
from workitems import crypto, schemas, sla
from workitems.errors import Conflict, NotAllowed, NotFound, ValidationFailed
from workitems.models import MAX_QUEUE_WEIGHT, Calendar, Lifecycle, Queue, default_sensitive_roles
from workitems.queues import calendar_snapshot, lifecycle_snapshot, queue_snapshot
from workitems.services.moves import work_items_redistribute_queue_over_capacity

FIELDS = (
    "name",
    "description",
    "strategy",
    "candidate_groups",
    "capacity_per_user",
    "sla",
    "escalation_queue",
    "lifecycle",
    "sensitive_keys",
    "sensitive_roles",
    "encrypted_keys",
    "reservation_timeout",
    "calendar",
    "at_risk_ratio",
    "escalation_policy",
    "max_open",
    "overflow_queue",
    "supervisor_groups",
    "channels",
    "critical",
    "weight",
    "department",
    "active",
)


def _check_admin(actor) -> None:
    if actor is not None and ADMIN not in roles_of(actor):
        raise NotAllowed("only admins create and change queues")


def _clean(data: dict, *, partial: bool, current: Queue | None) -> dict[str, Any]:
    """Validate and resolve a queue body; ValidationFailed lists every problem."""
    errors: list[dict[str, str]] = []
    out: dict[str, Any] = {}
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "body", "message": "must be a JSON object"}])
    nul = schemas.nul_errors(data)
    if nul:
        raise ValidationFailed(nul)
    for key in sorted(set(data) - set(FIELDS)):
        errors.append({"field": key, "message": "unknown field"})

    def err(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    if "name" in data or not partial:
        name = data.get("name")
        if current is not None and "name" in data and name != current.name:
            err("name", "a queue's name cannot change")
        elif not isinstance(name, str) or not name or len(name) > 100 or not _slug(name):
            err("name", "required: a slug (letters, digits, - and _) of at most 100 characters")
        elif current is None and Queue.objects.filter(name=name).exists():
            raise Conflict(f"queue {name!r} already exists")
        else:
            out["name"] = name
    if "description" in data:
        if not isinstance(data["description"], str):
            err("description", "must be a string")
        else:
            out["description"] = data["description"]
    if "strategy" in data:
        strategy = data["strategy"]
        names = [name for name, _ in queue_strategy_choices()]
        if strategy not in names:
            err("strategy", f"must be one of {', '.join(names)}")
        elif not wsconfig.get().strategy_enabled(strategy):
            err("strategy", f"strategy {strategy} is switched off in the configuration")
        else:
            out["strategy"] = strategy
    for field in ("candidate_groups", "supervisor_groups"):
        if field in data:
            names = data[field]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                err(field, "must be a list of group names")
            else:
                groups = list(Group.objects.filter(name__in=names))
                missing = sorted(set(names) - {g.name for g in groups})
                if missing:
                    err(field, f"unknown groups: {', '.join(missing)}")
                out[field] = groups
    if "capacity_per_user" in data:
        cap = data["capacity_per_user"]
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= 100_000):
            err("capacity_per_user", "must be null or an integer from 1 to 100000")
        else:
            out["capacity_per_user"] = cap
    for name, example in (("sla", "PT4H"), ("reservation_timeout", "PT5M")):
        if name in data:
            value, message = schemas.parse_positive_duration(data[name]) if data[name] is not None else (None, None)
            if message:
                err(name, f"{message}, e.g. {example} (or null)")
            else:
                out[name] = value
    if "escalation_queue" in data:
        target = data["escalation_queue"]
        if target is None:
            out["escalation_queue"] = None
        elif not isinstance(target, str) or not (q := Queue.objects.filter(name=target).first()):
            err("escalation_queue", f"unknown queue {target!r}")
        elif current is not None and q.pk == current.pk:
            err("escalation_queue", "a queue cannot escalate to itself")
        else:
            out["escalation_queue"] = q
    if "lifecycle" in data:
        target = data["lifecycle"]
        if target is None:
            out["lifecycle"] = None
        elif not isinstance(target, str) or not (lc := Lifecycle.objects.filter(name=target).first()):
            err("lifecycle", f"unknown lifecycle {target!r}")
        else:
            out["lifecycle"] = lc
    for field in ("sensitive_keys", "encrypted_keys"):
        if field in data:
            keys = data[field]
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                err(field, "must be a list of context_data keys")
            elif field == "encrypted_keys" and keys and crypto.key_ring() is None:
                # Secure default: no queue promises encryption the service cannot give.
                err(
                    field, "no context key ring is configured (WORKSTREAM_CONTEXT_KEYS or WORKSTREAM_CONTEXT_KEYS_FILE)"
                )
            else:
                out[field] = keys if field == "sensitive_keys" else list(dict.fromkeys(keys))
    if "sensitive_roles" in data:
        roles = data["sensitive_roles"]
        if roles is None:  # null (a blank admin field): the default
            out["sensitive_roles"] = default_sensitive_roles()
        elif not isinstance(roles, list) or not all(isinstance(r, str) and r in ROLES for r in roles):
            err("sensitive_roles", f"must be null or a list of platform roles drawn from {', '.join(ROLES)}")
        else:
            out["sensitive_roles"] = sorted(set(roles))
    for flag in ("active", "critical"):
        if flag in data:
            if not isinstance(data[flag], bool):
                err(flag, "must be true or false")
            else:
                out[flag] = data[flag]
    if "channels" in data:
        problems = channels_errors(data["channels"])
        errors.extend(problems)
        if not problems:
            out["channels"] = data["channels"]
    _clean_sla(data, out, errors)
    _clean_capacity(data, out, errors, current)
    _clean_routing(data, out, errors)
    if errors:
        raise ValidationFailed(errors)
    return out


def _clean_sla(data: dict, out: dict[str, Any], errors: list[dict[str, str]]) -> None:
    """The SLA settings of a queue: its business calendar, at-risk share and escalation policy."""
    if "calendar" in data:
        name = data["calendar"]
        found = Calendar.objects.filter(name=name).first() if isinstance(name, str) else None
        if name is not None and found is None:
            errors.append({"field": "calendar", "message": f"unknown calendar {name!r}"})
        else:
            out["calendar"] = found
    if "at_risk_ratio" in data:
        ratio = data["at_risk_ratio"]
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio < 1:
            errors.append({"field": "at_risk_ratio", "message": "a share of the allowed time, above 0 and below 1"})
        else:
            out["at_risk_ratio"] = float(ratio)
    if "escalation_policy" in data:
        policy = data["escalation_policy"]
        problems = sla.policy_errors(policy)
        named = (
            {a["queue"] for lvl in policy or [] for a in lvl["actions"] if a.get("type") == "reassign"}
            if not problems
            else set()
        )
        missing = sorted(named - set(Queue.objects.filter(name__in=named).values_list("name", flat=True)))
        if missing:
            problems.append({"field": "escalation_policy", "message": f"unknown queues: {', '.join(missing)}"})
        if problems:
            errors.extend(problems)
        else:
            out["escalation_policy"] = policy


def _clean_routing(data: dict, out: dict[str, Any], errors: list[dict[str, str]]) -> None:
    """Routing: the queue's `weight` in claim-next over several queues, and the `department`
    whose subtree its new items are for."""
    if "weight" in data:
        weight = data["weight"]
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_QUEUE_WEIGHT:
            errors.append({"field": "weight", "message": f"an integer from 1 to {MAX_QUEUE_WEIGHT}"})
        else:
            out["weight"] = weight
    if "department" in data:
        code = data["department"]
        found = Department.objects.filter(code=code).first() if isinstance(code, str) else None
        if code is not None and found is None:
            errors.append({"field": "department", "message": f"unknown department {code!r}"})
        else:
            out["department"] = found


def _clean_capacity(data: dict, out: dict[str, Any], errors: list[dict[str, str]], current: Queue | None) -> None:
    """A queue's capacity: `max_open` open items, the excess moved to `overflow_queue`."""
    if "max_open" in data:
        cap = data["max_open"]
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= 10_000_000):
            errors.append({"field": "max_open", "message": "must be null or an integer from 1 to 10000000"})
        else:
            out["max_open"] = cap
    if "overflow_queue" in data:
        target = data["overflow_queue"]
        found = Queue.objects.filter(name=target).first() if isinstance(target, str) else None
        if target is None:
            out["overflow_queue"] = None
        elif found is None:
            errors.append({"field": "overflow_queue", "message": f"unknown queue {target!r}"})
        elif current is not None and found.pk == current.pk:
            errors.append({"field": "overflow_queue", "message": "a queue cannot overflow into itself"})
        else:
            out["overflow_queue"] = found


def _slug(value: str) -> bool:
    return all(c.isalnum() or c in "-_" for c in value) and value.isascii()


def _apply(queue: Queue, values: dict[str, Any]) -> None:
    relations = {k: values.pop(k) for k in ("candidate_groups", "supervisor_groups") if k in values}
    for key, value in values.items():
        setattr(queue, key, value)
    queue.full_clean(exclude=["candidate_groups", "supervisor_groups"], validate_unique=False)
    queue.save()
    for key, groups in relations.items():
        getattr(queue, key).set(groups)


@transaction.atomic
def queue_create(*, actor, data: dict) -> Queue:
    """Create a queue (admins)."""
    _check_admin(actor)
    values = _clean(data, partial=False, current=None)
    queue = Queue()
    _apply(queue, values)
    audit_record(stream=f"queue:{queue.pk}", action="queue.create", actor=actor, data=queue_snapshot(queue))
    return queue


@transaction.atomic
def queue_update(*, actor, name: str, data: dict) -> Queue:
    """Change a queue's settings (admins); the audit record holds the before and after."""
    _check_admin(actor)
    queue = Queue.objects.select_for_update().filter(name=name).first()
    if queue is None:
        raise NotFound(f"queue {name!r} not found")
    before = queue_snapshot(queue)
    _apply(queue, _clean(data, partial=True, current=queue))
    audit_record(
        stream=f"queue:{queue.pk}",
        action="queue.update",
        actor=actor,
        data={"changes": _diff(before, queue_snapshot(queue))},
    )
    lowered = before["capacity_per_user"] is None or (queue.capacity_per_user or 0) < before["capacity_per_user"]
    if queue.capacity_per_user is not None and lowered:  # who now holds too many gets the excess moved on
        work_items_redistribute_queue_over_capacity(queue=queue)
    return queue


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [before[k], after[k]] for k in after if before.get(k) != after[k] and k != "updated_at"}


LIFECYCLE_FIELDS = (
    "name",
    "description",
    "start_step",
    "allow_suspend",
    "allow_release",
    "allow_delegate",
    "result_schema",
    "sub_statuses",
    "action_roles",
)


def _apply_fields(obj, data: dict, fields: tuple[str, ...], kind: str) -> None:
    """Set the fields of `data` on a definition and validate the whole of it (its clean())."""
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "body", "message": "must be a JSON object"}])
    errors = schemas.nul_errors(data) + [
        {"field": key, "message": "unknown field"} for key in sorted(set(data) - set(fields))
    ]
    if obj.pk and "name" in data and data["name"] != obj.name:
        errors.append({"field": "name", "message": f"a {kind}'s name cannot change"})
    if errors:
        raise ValidationFailed(errors)
    if not obj.pk and type(obj).objects.filter(name=data.get("name")).exists():
        raise Conflict(f"{kind} {data['name']!r} already exists")
    for key, value in data.items():
        setattr(obj, key, value)
    try:
        obj.full_clean()
    except DjangoValidationError as exc:
        raise ValidationFailed(
            [{"field": f, "message": "; ".join(m)} for f, m in sorted(exc.message_dict.items())]
        ) from None
    obj.save()


def _define(kind: str, model, fields, snapshot, *, actor, data: dict, name: str | None = None):
    """Create (name None) or change a definition, audited in its stream `<kind>:<id>`."""
    _check_admin(actor)
    if name is None:
        obj = model()
        _apply_fields(obj, data, fields, kind)
        audit_record(stream=f"{kind}:{obj.pk}", action=f"{kind}.create", actor=actor, data=snapshot(obj))
        return obj
    obj = model.objects.select_for_update().filter(name=name).first()
    if obj is None:
        raise NotFound(f"{kind} {name!r} not found")
    before = snapshot(obj)
    _apply_fields(obj, data, fields, kind)
    audit_record(
        stream=f"{kind}:{obj.pk}", action=f"{kind}.update", actor=actor, data={"changes": _diff(before, snapshot(obj))}
    )
    return obj


@transaction.atomic
def lifecycle_create(*, actor, data: dict) -> Lifecycle:
    """Create a lifecycle definition (admins)."""
    return _define("lifecycle", Lifecycle, LIFECYCLE_FIELDS, lifecycle_snapshot, actor=actor, data=data)


@transaction.atomic
def lifecycle_update(*, actor, name: str, data: dict) -> Lifecycle:
    """Change a lifecycle definition (admins); it applies at once to the items of its queues."""
    return _define("lifecycle", Lifecycle, LIFECYCLE_FIELDS, lifecycle_snapshot, actor=actor, data=data, name=name)


CALENDAR_FIELDS = ("name", "time_zone", "working_hours", "holidays", "country", "subdivision")


@transaction.atomic
def calendar_create(*, actor, data: dict) -> Calendar:
    """Create a business calendar (admins)."""
    return _define("calendar", Calendar, CALENDAR_FIELDS, calendar_snapshot, actor=actor, data=data)


@transaction.atomic
def calendar_update(*, actor, name: str, data: dict) -> Calendar:
    """Change a business calendar (admins); deadlines already set stay, new ones use it."""
    return _define("calendar", Calendar, CALENDAR_FIELDS, calendar_snapshot, actor=actor, data=data, name=name)
