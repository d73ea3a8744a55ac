"""Create: new work items, distributed as they are inserted (one change at version 1)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models import Q, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone

from config import sqlcache, statements, wsconfig
from config.observability import WORKITEM_CREATE_LATENCY_MS
from directory.models import Department
from distribution.engine import route_item
from events import urlguard
from stats.selectors import queue_figures
from workitems import crypto, policy, schemas, sla
from workitems.errors import Conflict, ConstraintViolated, NotAllowed, NotFound, ValidationFailed
from workitems.models import CREATE, Case, CaseState, Queue, SodScope, TaskType, WorkItem
from workitems.services._core import emit_unassigned, record_change, touch_last_assigned

User = get_user_model()


@dataclass
class _CreateLookups:
    """Names resolved once for a whole create or bulk create."""

    queues: dict[str, Queue]
    users: dict[str, Any]
    groups: dict[str, Group]
    departments: dict[str, Department] = field(default_factory=dict)
    task_types: dict[tuple[str, str], TaskType] = field(default_factory=dict)
    url_refusals: dict[str, str | None] = field(default_factory=dict)
    cases: dict[str, Case] = field(default_factory=dict)

    def callback_refusal(self, url: str) -> str | None:
        """Why the SSRF guard refuses `url` as a callback (once per URL per create). A name that
        does not resolve passes: it is resolved and checked again at every delivery."""
        if url not in self.url_refusals:
            try:
                urlguard.check(url, require_resolvable=False)
                self.url_refusals[url] = None
            except urlguard.TargetRefused as exc:
                self.url_refusals[url] = str(exc)
        return self.url_refusals[url]


def _lookups_for(bodies: list[dict], *, reserve_id: bool = False) -> _CreateLookups:
    """The queues, users, groups and active task types the bodies name. With `reserve_id` (one
    body, PostgreSQL), the queue's row comes with a fresh work-item id (`_next_item_id`, the
    table's own sequence), so the item's INSERT can go with the rest of the create as one
    statement (_insert_item).

    Bodies of one (workflow_id, task_name), a single create always, learn whether it has a task
    type from the queue's read itself (`_task_type_id`, and a body without a queue reads the
    task type's): a create without a task type costs no statement more. With one, it is read
    with its groups (two statements). Bodies of several tasks read their task types first."""
    queue_names, usernames, group_names = set(), set(), set()
    for body in bodies:
        if "queue" in body:
            queue_names.update(body["queue"] if isinstance(body["queue"], list) else [body["queue"]])
        usernames.update(body.get("candidate_users", []), body.get("excluded_users", []))
        if body.get("assignee"):
            usernames.add(body["assignee"])
        group_names.update(body.get("candidate_groups", []))
    department_codes = {body["department"] for body in bodies if body.get("department")}
    pairs = {(body["workflow_id"], body["task_name"]) for body in bodies}
    task_types: dict[tuple[str, str], TaskType] = {}
    reserve = reserve_id and connection.vendor == "postgresql"
    if len(pairs) == 1:
        [pair] = pairs
        by_task = any("queue" not in body for body in bodies)
        queues = _queues_of_one_task(sorted(queue_names), pair, by_task=by_task, reserve=reserve)
        if any(getattr(q, "_task_type_id", None) for q in queues.values()):
            task_types = _task_types_for(Q(pk__in={q._task_type_id for q in queues.values()}))
    else:
        task_types = _task_types_for(_pairs_filter(pairs))
        queue_names.update(t.queue.name for t in task_types.values() if t.queue_id)
        queues = {q.name: q for q in _queues_query(Q(name__in=queue_names), reserve=reserve)}
    users = {u.username: u for u in User.objects.filter(username__in=usernames)} if usernames else {}
    groups = {g.name: g for g in Group.objects.filter(name__in=group_names)} if group_names else {}
    for task_type in task_types.values():  # the task types' groups, for the bodies that name none
        groups.update((g.name, g) for g in task_type.candidate_groups.all())
    departments = {d.code: d for d in Department.objects.filter(code__in=department_codes)} if department_codes else {}
    cases = _cases_named({b["case"] for b in bodies if b.get("case")})
    return _CreateLookups(queues, users, groups, departments, task_types, cases=cases)


def _queues_query(where: Q, *, reserve: bool, task_type=None):
    """The queues `where` selects with what a create uses of them (lifecycle, calendar,
    department), the id of `task_type`'s active task type (a queryset of one) as `_task_type_id`,
    and with `reserve` a fresh work-item id as `_next_item_id`."""
    found = Queue.objects.select_related("lifecycle", "calendar", "department").filter(where)
    if task_type is not None:
        found = found.annotate(_task_type_id=Subquery(task_type.values("pk")[:1]))
    if reserve:
        next_id = RawSQL("nextval(pg_get_serial_sequence(%s, 'id'))", [WorkItem._meta.db_table])  # noqa: S611 - constant SQL
        found = found.annotate(_next_item_id=next_id)
    return found


def _queues_of_one_task(names: list[str], pair: tuple[str, str], *, by_task: bool, reserve: bool) -> dict:
    """The named queues of bodies that are all one (workflow_id, task_name), each with that
    task's active task type id (and with `by_task` the task type's own queue too): one statement,
    compiled once per shape and connection (config.sqlcache): building it through the ORM cost
    more than its round trip on every create."""

    def build(names, workflow_id, task_name):
        matching = TaskType.objects.filter(workflow_id=workflow_id, task_name=task_name, active=True)
        where = Q(name__in=names)
        if by_task:
            where |= Q(pk__in=matching.values("queue_id"))
        return _queues_query(where, reserve=reserve, task_type=matching)

    def stand_ins(stand):
        return build([stand.text(f"q{i}") for i in range(len(names))], stand.text("wf"), stand.text("task"))

    template = sqlcache.template(("create-queues", len(names), by_task, reserve), stand_ins) if names else None
    if template is None:
        found = build(names, *pair)
    else:
        found = template.fetch({"wf": pair[0], "task": pair[1], **{f"q{i}": n for i, n in enumerate(names)}})
    return {q.name: q for q in found}


def _cases_named(numbers: set[str]) -> dict[str, Case]:
    """The cases the bodies name (one statement, none without a case), each row held FOR KEY
    SHARE until the create commits: a close (FOR UPDATE) waits for the items joining the case
    and then counts them, and a create that comes during a close waits and reads the case as the
    close left it (services.cases)."""
    if not numbers:
        return {}
    qs = Case.objects.filter(case_number__in=sorted(numbers))
    if connection.vendor == "postgresql":
        sql, params = qs.query.sql_with_params()
        qs = Case.objects.raw(f"{sql} FOR KEY SHARE", params)
    return {c.case_number: c for c in qs}


def _resolve_case(body: dict, lookups: _CreateLookups, prefix: str, errors: list[dict[str, str]]) -> Case | None:
    """The open case a body joins (`case`, by number), or None. An unknown case is NotFound (as
    an unknown queue), a closed one a Conflict; `sod_scope: case` without a case is a 400."""
    number = body.get("case")
    at = f" (at {prefix})" if prefix else ""
    if not number:
        if body.get("sod_scope") == SodScope.CASE:
            errors.append({"field": schemas.dotted(prefix, ["sod_scope"]), "message": "case scope needs a `case`"})
        return None
    case = lookups.cases.get(number)
    if case is None:
        raise NotFound(f"case {number!r} not found{at}")
    if case.state != CaseState.OPEN:
        raise Conflict(f"case {number!r} is closed: reopen it before adding items{at}")
    return case


def _pairs_filter(pairs: set[tuple[str, str]]) -> Q:
    where = Q(pk__in=[])
    for workflow_id, task_name in pairs:
        where |= Q(workflow_id=workflow_id, task_name=task_name)
    return where


def _task_types_for(where: Q) -> dict[tuple[str, str], TaskType]:
    found = TaskType.objects.filter(where, active=True).select_related("queue").prefetch_related("candidate_groups")
    return {(t.workflow_id, t.task_name): t for t in found}


def _with_task_type(body: dict, lookups: _CreateLookups, prefix: str) -> tuple[dict, TaskType | None]:
    """The create body with its task type's defaults for every field it leaves out (queue,
    priority, candidate groups, required skills; the SLA is _build_item's), and the task type.
    A body naming no queue whose task type gives none is the 400 it always was."""
    task_type = lookups.task_types.get((body["workflow_id"], body["task_name"]))
    if task_type is not None:
        defaults: dict[str, Any] = {
            "queue": task_type.queue.name if task_type.queue_id else None,
            "priority": task_type.priority,
            "candidate_groups": sorted(g.name for g in task_type.candidate_groups.all()) or None,
            "required_skills": task_type.required_skills or None,
        }
        body = {**{k: v for k, v in defaults.items() if v is not None}, **body}
    if "queue" not in body:
        raise ValidationFailed([{"field": schemas.dotted(prefix, ["queue"]), "message": "this field is required"}])
    return body, task_type


def _build_item(body: dict, lookups: _CreateLookups, actor, prefix: str) -> tuple[WorkItem, dict]:
    """Validate the semantics of one create body and build the unsaved item."""
    body, task_type = _with_task_type(body, lookups, prefix)
    errors: list[dict[str, str]] = []
    choice = None
    if isinstance(body["queue"], list):
        queue, choice = _least_loaded(body["queue"], lookups, prefix)
    else:
        queue = lookups.queues.get(body["queue"])
    if queue is None:
        raise NotFound(f"queue {body['queue']!r} not found" + (f" (at {prefix})" if prefix else ""))
    if not queue.active:
        errors.append({"field": schemas.dotted(prefix, ["queue"]), "message": f"queue {queue.name} is not active"})
    due_at = schemas.parse_time(body.get("due_at"), schemas.dotted(prefix, ["due_at"]), errors)
    follow_up_at = schemas.parse_time(body.get("follow_up_at"), schemas.dotted(prefix, ["follow_up_at"]), errors)
    related: dict[str, list] = {}
    for name in ("candidate_users", "excluded_users"):
        wanted = list(dict.fromkeys(body.get(name, [])))
        unknown = [u for u in wanted if u not in lookups.users]
        if unknown:
            errors.append({"field": schemas.dotted(prefix, [name]), "message": f"unknown users: {', '.join(unknown)}"})
        related[name] = [lookups.users[u] for u in wanted if u in lookups.users]
    wanted_groups = list(dict.fromkeys(body.get("candidate_groups", [])))
    unknown_groups = [g for g in wanted_groups if g not in lookups.groups]
    if unknown_groups:
        errors.append(
            {
                "field": schemas.dotted(prefix, ["candidate_groups"]),
                "message": f"unknown groups: {', '.join(unknown_groups)}",
            }
        )
    related["candidate_groups"] = [lookups.groups[g] for g in wanted_groups if g in lookups.groups]
    assignee = None
    if body.get("assignee"):
        assignee = lookups.users.get(body["assignee"])
        if assignee is None:
            errors.append(
                {"field": schemas.dotted(prefix, ["assignee"]), "message": f"unknown user {body['assignee']!r}"}
            )
    department = queue.department if queue is not None else None
    if body.get("department"):
        department = lookups.departments.get(body["department"])
        if department is None:
            errors.append(
                {
                    "field": schemas.dotted(prefix, ["department"]),
                    "message": f"unknown department {body['department']!r}",
                }
            )
    strategy = body.get("strategy", "")
    if strategy and not wsconfig.get().strategy_enabled(strategy):
        errors.append(
            {"field": schemas.dotted(prefix, ["strategy"]), "message": f"strategy {strategy} is switched off"}
        )
    callback_url = body.get("callback_url", "")
    refusal = lookups.callback_refusal(callback_url) if callback_url else None
    if refusal:
        errors.append({"field": schemas.dotted(prefix, ["callback_url"]), "message": f"refused: {refusal}"})
    errors += crypto.reserved_form_errors(body.get("context_data"), schemas.dotted(prefix, ["context_data"]))
    case = _resolve_case(body, lookups, prefix, errors)
    if errors:
        raise ValidationFailed(errors)
    crypto.check_ring_for(queue)
    now = timezone.now()
    if due_at is None and case is not None:
        due_at = case.due_at  # the case's deadline comes before the task type's and queue's SLA
    if due_at is None:  # in the queue's business calendar, if it has one
        due_at = sla.due_from(queue, now, task_type.sla if task_type is not None else None)
    item = WorkItem(
        workflow_id=body["workflow_id"],
        run_id=body.get("run_id", ""),
        task_name=body["task_name"],
        title=body.get("title", ""),
        description=body.get("description", ""),
        queue=queue,
        task_type=task_type,
        priority=body.get("priority", 50),
        due_at=due_at,
        follow_up_at=follow_up_at,
        context_data=body.get("context_data", {}),
        required_skills=body.get("required_skills", []),
        sod_key=body.get("sod_key", ""),
        sod_scope=body.get("sod_scope", SodScope.RUN),
        case=case,
        department=department,
        optional=body.get("optional", False),
        strategy=strategy,
        callback_url=callback_url,
        correlation_id=body.get("correlation_id", ""),
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    sla.start_clock(item, now)
    if choice is not None:
        item.queue_choice = choice  # recorded with the create (_insert_item)
    if assignee is not None:
        refusal = policy.hold_refusal(assignee, item, related=related)
        if refusal is not None:
            constraint, detail = refusal
            raise ConstraintViolated(f"{schemas.dotted(prefix, ['assignee'])}: {detail}", constraint=constraint)
    return item, {**related, "assignee": assignee}


def _least_loaded(names: list[str], lookups: _CreateLookups, prefix: str) -> tuple[Queue | None, dict]:
    """Of the named queues, the active one with the fewest open items (the statistics'
    maintained counters, stats.selectors.queue_figures: no count of the items); ties go to the
    first named. NotFound names the unknown ones; none active is a 400."""
    unknown = [n for n in names if n not in lookups.queues]
    if unknown:
        raise NotFound(f"queues not found: {', '.join(map(repr, unknown))}" + (f" (at {prefix})" if prefix else ""))
    active = [lookups.queues[n] for n in names if lookups.queues[n].active]
    if not active:
        raise ValidationFailed(
            [{"field": schemas.dotted(prefix, ["queue"]), "message": "none of these queues is active"}]
        )
    figures = queue_figures([q.pk for q in active])
    opened = {q.name: figures[q.pk]["open"] for q in active}
    chosen = min(active, key=lambda q: opened[q.name])  # min keeps the first of equals
    return chosen, {"candidates": opened, "chosen": chosen.name}


def _insert_item(item: WorkItem, related: dict, actor, *, item_id: int | None = None) -> WorkItem:
    """Route, insert, link and record one new item: a single change at version 1.

    The distribution decision is taken before the insert and applied as the
    item's first transition (offer, assign or reserve), so a create costs one
    item row, one audit record and one event (plus `workitem.unassigned.v1`
    when a push strategy found nobody). With `item_id` (reserved from the table's sequence,
    _lookups_for) the item's INSERT is the first part of the create's one statement; else
    it is sent first on its own, for its id."""
    route = route_item(item=item, requested_assignee=related["assignee"], related=related)
    if route.action == "assign":
        item.assign(user=route.user)
    elif route.action == "reserve":
        item.reserve(user=route.user, until=timezone.now() + item.queue.reservation_timeout)
    else:
        item.offer()
    item.event_seq = 1
    batch = statements.Batch()
    if item_id is not None:
        item.pk = item_id  # after routing: distribution reads an item without an id as one being created
        crypto.seal(item)  # the id is the ciphertexts' associated data
        batch.insert(WorkItem, [item])
    else:
        clear = crypto.withhold(item)  # out of the INSERT that gives the id, sealed in the batch below
        item.save(force_insert=True)
        if crypto.seal(item, clear):
            batch.update(WorkItem, {"context_data": item.context_data}, pk=item.pk)
    item.audit_head = None  # a new stream
    # Everything else of the create is one statement: the candidate lists, the assignee's
    # last assignment, the audit record and its chain head, the event(s).
    for name in ("candidate_users", "candidate_groups", "excluded_users"):
        if related[name]:
            batch.insert(*_links(item, name, related[name]))
    data: dict[str, Any] = {"route": route.action, "strategy": route.strategy}
    if route.user is not None:
        data["assignee" if route.action == "assign" else "reserved_for"] = route.user.username
    if route.on_behalf_of:
        data["on_behalf_of"] = route.on_behalf_of
    if route.unassigned:
        data["unassigned_reason"] = route.reason
    if getattr(item, "queue_choice", None):
        data["queue_choice"] = item.queue_choice
    if route.user is not None:
        touch_last_assigned(route.user.pk, batch=batch)
    record_change(item=item, action="create", actor=actor, from_state="", data=data, batch=batch)
    if route.unassigned:
        emit_unassigned(item, route, batch=batch)
    batch.run()
    if item_id is not None:  # as Model.save() leaves a saved instance
        item._state.adding, item._state.db = False, DEFAULT_DB_ALIAS
        item._update_initial_state()
    for name in ("candidate_users", "candidate_groups", "excluded_users"):
        item._prefetched_objects_cache = getattr(item, "_prefetched_objects_cache", {})
        item._prefetched_objects_cache[name] = _as_prefetched(item, name, related[name])
    return item


def _links(item: WorkItem, name: str, targets: list):
    """(through model, rows) of the many-to-many `name` linking `item` to `targets`."""
    m2m = WorkItem._meta.get_field(name)
    through = m2m.remote_field.through
    source, target = m2m.m2m_field_name(), m2m.m2m_reverse_field_name()
    return through, [through(**{f"{source}_id": item.pk, f"{target}_id": t.pk}) for t in targets]


def _as_prefetched(item: WorkItem, name: str, targets: list):
    """The list as a prefetched queryset result, so the response does not read back what was just written."""
    qs = getattr(item, name).all()
    qs._result_cache = list(targets)
    qs._prefetch_done = True
    return qs


def _check_may_create(actor) -> None:
    if not policy.role_allows(CREATE, None, actor):
        raise NotAllowed("your roles do not allow creating work items")


@transaction.atomic
def work_item_create(*, actor, data: dict) -> WorkItem:
    """Create one work item and distribute it (offer to its queue or assign)."""
    t0 = time.perf_counter()
    _check_may_create(actor)
    errors = schemas.create_shape_errors(data)
    if errors:
        raise ValidationFailed(errors)
    lookups = _lookups_for([data], reserve_id=True)
    item, related = _build_item(data, lookups, actor, "")
    item = _insert_item(item, related, actor, item_id=getattr(item.queue, "_next_item_id", None))
    WORKITEM_CREATE_LATENCY_MS.observe((time.perf_counter() - t0) * 1000)
    return item


@transaction.atomic
def work_item_create_many(*, actor, items: list[dict]) -> list[WorkItem]:
    """Create up to `performance.bulkCreateMax` items in one transaction: all or none."""
    _check_may_create(actor)
    limit = wsconfig.get().performance.bulkCreateMax
    if not isinstance(items, list) or not items:
        raise ValidationFailed([{"field": "items", "message": "must be a non-empty list"}])
    if len(items) > limit:
        raise ValidationFailed([{"field": "items", "message": f"at most {limit} items per request"}])
    errors = [e for i, body in enumerate(items) for e in schemas.create_shape_errors(body, f"items[{i}]")]
    if errors:
        raise ValidationFailed(errors)
    lookups = _lookups_for(items)
    built = [_build_item(body, lookups, actor, f"items[{i}]") for i, body in enumerate(items)]
    return [_insert_item(item, related, actor) for item, related in built]
