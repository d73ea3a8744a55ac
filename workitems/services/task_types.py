"""Task-type commands: define the defaults of a workflow's tasks, one by one or a whole
workflow in one call (admins, supervisors and service clients: policy.may_define_task_types).
Each change is validated in full before anything is written, applied and audited (stream
`task_type:<id>`, with the snapshot or the before and after) in one transaction; the REST
API and the admin call these."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction

from audit.services import audit_record
from workitems import policy, schemas
from workitems.errors import Conflict, NotAllowed, NotFound, ValidationFailed
from workitems.models import TASK_KEY_MAX, Queue, TaskType
from workitems.tasktypes import task_type_snapshot

KEY_FIELDS = ("workflow_id", "task_name")
# The defaults a task type holds (and a task of POST /workflows may give).
DEFAULT_FIELDS = (
    "description",
    "queue",
    "priority",
    "sla",
    "candidate_groups",
    "required_skills",
    "sensitive_keys",
    "result_schema",
    "form",
    "active",
)
TASK_TYPE_FIELDS = (*KEY_FIELDS, "workflow_name", *DEFAULT_FIELDS)
# What a field of a task type is when a registration (POST /workflows) leaves it out.
_BLANK: dict[str, Any] = {
    "description": "",
    "queue": None,
    "priority": None,
    "sla": None,
    "candidate_groups": [],
    "required_skills": [],
    "sensitive_keys": [],
    "result_schema": None,
    "form": None,
    "active": True,
}
_FORM_KEYS = {"name", "label", "help"}
MAX_FORM_TEXT = 2000


def _check_may_define(actor) -> None:
    if not policy.may_define_task_types(actor):
        raise NotAllowed("only admins, supervisors and service clients define task types")


def _key_error(value: Any) -> str | None:
    if not isinstance(value, str) or not value or len(value) > TASK_KEY_MAX:
        return f"required: a string of 1 to {TASK_KEY_MAX} characters"
    if "/" in value:
        return 'must not contain "/" (it is a segment of /task-types/{workflow_id}/{task_name})'
    return None


def _strings(value: Any, *, max_length: int) -> bool:
    return (
        isinstance(value, list)
        and all(isinstance(v, str) and 0 < len(v) <= max_length for v in value)
        and len(value) <= 1000
    )


def form_errors(form: Any, schema: dict | None, field: str = "form") -> list[dict[str, str]]:
    """Why `form` is not a console form for a result of `schema`: null, or
    `{"fields": [{"name", "label", "help"}]}` naming each property at most once (and, when the
    schema lists its properties, only those)."""
    if form is None:
        return []
    if not isinstance(form, dict) or set(form) - {"fields"} or not isinstance(form.get("fields", []), list):
        return [{"field": field, "message": 'must be null or {"fields": [{"name", "label", "help"}, …]}'}]
    known = schema.get("properties") if isinstance(schema, dict) else None
    errors, seen = [], set()
    for i, entry in enumerate(form.get("fields", [])):
        at = f"{field}.fields[{i}]"
        if not isinstance(entry, dict) or set(entry) - _FORM_KEYS:
            errors.append({"field": at, "message": "must be an object of name, label and help"})
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            errors.append({"field": f"{at}.name", "message": "required: the result property it shows"})
        elif name in seen:
            errors.append({"field": f"{at}.name", "message": f"{name!r} is listed twice"})
        elif isinstance(known, dict) and name not in known:
            errors.append({"field": f"{at}.name", "message": f"{name!r} is not a property of the result_schema"})
        seen.add(name)
        for text in ("label", "help"):
            if text in entry and (not isinstance(entry[text], str) or len(entry[text]) > MAX_FORM_TEXT):
                errors.append({"field": f"{at}.{text}", "message": f"must be a string of at most {MAX_FORM_TEXT}"})
    return errors


def _clean(data: Any, *, allowed: tuple[str, ...], prefix: str = "") -> dict[str, Any]:
    """Validate and resolve the fields of a task-type body (only those it gives);
    ValidationFailed lists every problem, each naming its field (under `prefix`)."""
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": prefix or "body", "message": "must be a JSON object"}])
    nul = schemas.nul_errors(data, prefix)
    if nul:
        raise ValidationFailed(nul)
    errors: list[dict[str, str]] = [
        {"field": schemas.dotted(prefix, [key]), "message": "unknown field"} for key in sorted(set(data) - set(allowed))
    ]
    out: dict[str, Any] = {}

    def err(name: str, message: str) -> None:
        errors.append({"field": schemas.dotted(prefix, [name]), "message": message})

    for name in KEY_FIELDS:
        if name in data:
            message = _key_error(data[name])
            if message:
                err(name, message)
            else:
                out[name] = data[name]
    for name, limit in (("workflow_name", 200), ("description", 100_000)):
        if name in data:
            if not isinstance(data[name], str) or len(data[name]) > limit:
                err(name, f"must be a string of at most {limit} characters")
            else:
                out[name] = data[name]
    if "queue" in data:
        target = data["queue"]
        found = Queue.objects.filter(name=target).first() if isinstance(target, str) else None
        if target is not None and found is None:
            err("queue", f"unknown queue {target!r}")
        else:
            out["queue"] = found
    if "priority" in data:
        p = data["priority"]
        if p is not None and (isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 100):
            err("priority", "must be null or an integer from 0 to 100")
        else:
            out["priority"] = p
    if "sla" in data:
        value, message = schemas.parse_positive_duration(data["sla"]) if data["sla"] is not None else (None, None)
        if message:
            err("sla", f"{message}, e.g. PT4H (or null)")
        else:
            out["sla"] = value
    if "candidate_groups" in data:
        names = data["candidate_groups"]
        if not _strings(names, max_length=150):
            err("candidate_groups", "must be a list of group names")
        else:
            groups = list(Group.objects.filter(name__in=names))
            missing = sorted(set(names) - {g.name for g in groups})
            if missing:
                err("candidate_groups", f"unknown groups: {', '.join(missing)}")
            out["candidate_groups"] = groups
    for name, what, limit in (("required_skills", "skill names", 100), ("sensitive_keys", "context_data keys", 200)):
        if name in data:
            if data[name] is None:  # null (a blank admin field): none
                out[name] = []
            elif not _strings(data[name], max_length=limit):
                err(name, f"must be a list of {what} (each 1 to {limit} characters)")
            else:
                out[name] = list(dict.fromkeys(data[name]))
    if "result_schema" in data:
        schema = data["result_schema"]
        message = schemas.json_schema_error(schema) if schema is not None else None
        if message:
            err("result_schema", f"{message} (or null)")
        else:
            out["result_schema"] = schema
    if "form" in data:  # checked against the result schema the task type ends up with (_apply)
        out["form"] = data["form"]
    if "active" in data:
        if not isinstance(data["active"], bool):
            err("active", "must be true or false")
        else:
            out["active"] = data["active"]
    if errors:
        raise ValidationFailed(errors)
    return out


def _apply(task_type: TaskType, values: dict[str, Any], *, prefix: str = "") -> None:
    """Set `values` on the task type, check its form against the result schema it will have, save."""
    groups = values.pop("candidate_groups", None)
    for key, value in values.items():
        setattr(task_type, key, value)
    problems = form_errors(task_type.form, task_type.result_schema, schemas.dotted(prefix, ["form"]))
    if problems:
        raise ValidationFailed(problems)
    creating = task_type.pk is None
    try:
        with transaction.atomic():  # a savepoint: a concurrent create of the same key is a 409
            task_type.save()
    except IntegrityError:
        if not creating:
            raise
        raise Conflict(f"task type {task_type} already exists") from None
    if groups is not None:
        task_type.candidate_groups.set(groups)


def _create(actor, values: dict[str, Any], prefix: str = "") -> TaskType:
    task_type = TaskType()
    _apply(task_type, values, prefix=prefix)
    audit_record(
        stream=f"task_type:{task_type.pk}",
        action="task_type.create",
        actor=actor,
        data=task_type_snapshot(task_type, times=False),
    )
    return task_type


def _update(actor, task_type: TaskType, values: dict[str, Any], prefix: str = "") -> bool:
    """Change a locked task type; whether anything changed (only a change is audited)."""
    before = task_type_snapshot(task_type, times=False)
    _apply(task_type, values, prefix=prefix)
    after = task_type_snapshot(task_type, times=False)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if changes:
        audit_record(
            stream=f"task_type:{task_type.pk}", action="task_type.update", actor=actor, data={"changes": changes}
        )
    return bool(changes)


def _locked(workflow_id: str, task_name: str) -> TaskType | None:
    return (
        TaskType.objects.select_for_update(of=("self",))
        .select_related("queue")
        .filter(workflow_id=workflow_id, task_name=task_name)
        .first()
    )


@transaction.atomic
def task_type_create(*, actor, data: dict) -> TaskType:
    """Define the task type of (workflow_id, task_name); 409 when it exists."""
    _check_may_define(actor)
    values = _clean(data, allowed=TASK_TYPE_FIELDS)
    missing = [
        {"field": name, "message": "this field is required"}
        for name in KEY_FIELDS
        if name not in values and name not in (data or {})
    ]
    if missing:
        raise ValidationFailed(missing)
    if TaskType.objects.filter(workflow_id=values["workflow_id"], task_name=values["task_name"]).exists():
        raise Conflict(f"task type {values['workflow_id']}/{values['task_name']} already exists")
    return _create(actor, values)


@transaction.atomic
def task_type_update(*, actor, workflow_id: str, task_name: str, data: dict) -> TaskType:
    """Change a task type's defaults (the fields given; its key cannot change). Items created
    before keep the task type: its new result schema and sensitive keys apply to them at once."""
    _check_may_define(actor)
    task_type = _locked(workflow_id, task_name)
    if task_type is None:
        raise NotFound(f"task type {workflow_id}/{task_name} not found")
    values = _clean(data, allowed=TASK_TYPE_FIELDS)
    moved = [
        {"field": k, "message": "a task type's workflow_id and task_name cannot change"}
        for k in KEY_FIELDS
        if k in values and values[k] != getattr(task_type, k)
    ]
    if moved:
        raise ValidationFailed(moved)
    _update(actor, task_type, values)
    return task_type


def _workflow_body(data: Any) -> tuple[str, str, list[tuple[str, dict[str, Any]]]]:
    """(id, name, [(task name, its cleaned defaults)]) of a registration; ValidationFailed names
    every problem of every task (`tasks[2].queue`)."""
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "body", "message": "must be a JSON object"}])
    errors = [{"field": key, "message": "unknown field"} for key in sorted(set(data) - {"id", "name", "tasks"})]
    workflow_id, name, tasks = data.get("id"), data.get("name", ""), data.get("tasks")
    message = _key_error(workflow_id)
    if message:
        errors.append({"field": "id", "message": message})
    if not isinstance(name, str) or len(name) > 200:
        errors.append({"field": "name", "message": "must be a string of at most 200 characters"})
    if not isinstance(tasks, list) or not tasks or len(tasks) > 1000:
        errors.append({"field": "tasks", "message": "required: a list of 1 to 1000 tasks"})
        raise ValidationFailed(errors)
    cleaned, seen = [], set()
    for i, task in enumerate(tasks):
        prefix = f"tasks[{i}]"
        task_name = task.get("name") if isinstance(task, dict) else None
        message = _key_error(task_name)
        if message:
            errors.append({"field": f"{prefix}.name", "message": message})
        elif task_name in seen:
            errors.append({"field": f"{prefix}.name", "message": f"task {task_name!r} is listed twice"})
        seen.add(task_name)
        body = {k: v for k, v in task.items() if k != "name"} if isinstance(task, dict) else task
        try:
            cleaned.append((task_name, _clean(body, allowed=DEFAULT_FIELDS, prefix=prefix)))
        except ValidationFailed as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    return workflow_id, name, cleaned


@transaction.atomic
def workflow_register(*, actor, data: dict) -> dict[str, Any]:
    """Register a workflow's task types in one transaction (`{"id", "name", "tasks": [{"name",
    …defaults}]}`): each task listed is created, or replaced by its new definition (a field it
    leaves out goes back to its blank default, `active` to true); a re-post of the same body
    changes nothing. The workflow's task types a re-post does not list are kept as they are (runs
    of the workflow's earlier version may still create them): deactivate one with
    PATCH {"active": false}. All or nothing: one bad task writes nothing."""
    _check_may_define(actor)
    workflow_id, name, tasks = _workflow_body(data)
    existing = {
        t.task_name: t
        for t in TaskType.objects.select_for_update(of=("self",))
        .select_related("queue")
        .prefetch_related("candidate_groups")
        .filter(workflow_id=workflow_id)
    }
    outcome: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
    registered = []
    for i, (task_name, values) in enumerate(tasks):
        values = {**_BLANK, **values, "workflow_name": name}
        current = existing.get(task_name)
        if current is None:
            task_type = _create(actor, {**values, "workflow_id": workflow_id, "task_name": task_name}, f"tasks[{i}]")
            outcome["created"].append(task_name)
        else:
            task_type = current
            changed = _update(actor, task_type, values, f"tasks[{i}]")
            outcome["updated" if changed else "unchanged"].append(task_name)
        registered.append(task_type)
    return {"id": workflow_id, "name": name, "task_types": registered, **outcome}
