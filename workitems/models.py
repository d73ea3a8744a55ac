"""Work items, the queues they wait in, and the lifecycle definitions that shape them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import jsonschema
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from config import wsconfig
from directory.roles import ADMIN, ROLES, SUPERVISOR, SYSTEM
from distribution.strategies import queue_strategy_choices, strategy_choices
from workitems.calendars import BusinessCalendar, CalendarError
from workitems.schemas import validate_time_range


class State(models.TextChoices):
    CREATED = "CREATED"
    OFFERED = "OFFERED"
    ASSIGNED = "ASSIGNED"
    IN_PROGRESS = "IN_PROGRESS"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


OPEN_STATES = (State.CREATED, State.OFFERED, State.ASSIGNED, State.IN_PROGRESS, State.SUSPENDED)
TERMINAL_STATES = (State.COMPLETED, State.FAILED, State.CANCELLED)
# States in which an item is held by a user (SUSPENDED too when it was held when suspended).
HELD_STATES = (State.ASSIGNED, State.IN_PROGRESS, State.SUSPENDED)


@dataclass(frozen=True)
class Action:
    """One row of the action table: what a caller or the system may do to an item."""

    event: str  # the event it emits: workitem.<event>.v1
    route: str | None = None  # its REST route, POST /workitems/{id}/<route>; None: not fired by id
    args: tuple[str, ...] = ()  # the inputs it takes besides the item and the actor
    system: bool = False  # a step of the system's own (distribution, the SLA scan): no command of its own


# The action table: the only list of work-item actions. Each is a transition method of
# WorkItem with the same name (checked by a test); the REST routes, the inbound bus
# commands, the policy's role and relation tables and the lifecycle's `action_roles`
# derive from it. `create` is not a transition (it makes the item): see CREATE.
ACTIONS: dict[str, Action] = {
    "offer": Action("offered"),
    "assign": Action("assigned", "assign", ("user",)),
    "claim": Action("claimed", "claim"),
    "release": Action("released", "release"),
    "start": Action("started", "start"),
    "complete": Action("completed", "complete", ("result",)),
    "fail": Action("failed", "fail", ("reason",)),
    "suspend": Action("suspended", "suspend", ("reason",)),
    "resume": Action("resumed", "resume"),
    "delegate": Action("delegated", "delegate", ("user",)),
    "escalate": Action("escalated", "escalate", ("reason",)),
    "cancel": Action("cancelled", "cancel", ("reason",)),
    "set_sub_status": Action("sub_status_changed", "sub-status", ("sub_status",)),
    "reserve": Action("reserved", system=True),
    "sla_at_risk": Action("sla_at_risk", system=True),
    "sla_breach": Action("sla_breached", system=True),
    "accept": Action("accepted", "accept"),
    "reject": Action("rejected", "reject", ("reason",)),
    "move": Action("moved", "move", ("queue",)),
    "skip": Action("skipped", "skip", ("reason",)),
    "forward": Action("forwarded", "forward", ("users", "groups")),
    # a supervisor's new terms: PATCH /workitems/{id} (priority, due date, follow-up date)
    "update": Action("updated", args=("changes",)),
}
CREATE = "create"
CREATE_EVENT = "created"
# The event name of every action, create included.
EVENT_NAMES: dict[str, str] = {CREATE: CREATE_EVENT, **{name: a.event for name, a in ACTIONS.items()}}
# REST route segment → action name.
ROUTED_ACTIONS: dict[str, str] = {a.route: name for name, a in ACTIONS.items() if a.route}
# What a caller fires on an item (REST, the bus): the routed actions, and `update` (PATCH).
CALLER_ACTIONS: tuple[str, ...] = (*ROUTED_ACTIONS.values(), "update")


class Lifecycle(models.Model):
    """A lifecycle definition (data, edited in the admin): which optional steps exist,
    the JSON Schema a result must satisfy, sub-statuses inside IN_PROGRESS, and which
    platform roles may fire which action. Queues without one use the defaults."""

    START_REQUIRED, START_OPTIONAL, START_DISABLED = "required", "optional", "disabled"
    START_CHOICES = [
        (START_REQUIRED, "required: complete only from IN_PROGRESS"),
        (START_OPTIONAL, "optional: complete from ASSIGNED or IN_PROGRESS"),
        (START_DISABLED, "disabled: no start; complete from ASSIGNED"),
    ]

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    start_step = models.CharField(max_length=10, choices=START_CHOICES, default=START_REQUIRED)
    allow_suspend = models.BooleanField(default=True)
    allow_release = models.BooleanField(default=True)
    allow_delegate = models.BooleanField(default=True)
    result_schema = models.JSONField(
        null=True, blank=True, help_text="JSON Schema that the result of `complete` must satisfy"
    )
    sub_statuses = models.JSONField(
        default=dict,
        blank=True,
        help_text='Named sub-statuses inside IN_PROGRESS: {"initial": "drafting", '
        '"moves": {"drafting": ["review"], "review": ["drafting"]}}',
    )
    action_roles = models.JSONField(
        default=dict,
        blank=True,
        help_text='Which platform roles may fire an action, replacing the default: {"cancel": ["admin"]}',
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.result_schema is not None:
            try:
                jsonschema.Draft202012Validator.check_schema(self.result_schema)
            except jsonschema.SchemaError as exc:
                errors["result_schema"] = f"not a valid JSON Schema: {exc.message}"
        subs = self.sub_statuses or {}
        if not isinstance(subs, dict) or set(subs) - {"initial", "moves"}:
            errors["sub_statuses"] = 'must be an object with "initial" and "moves"'
        else:
            moves = subs.get("moves", {})
            if not isinstance(moves, dict) or not all(
                isinstance(v, list) and all(isinstance(x, str) for x in v) for v in moves.values()
            ):
                errors["sub_statuses"] = '"moves" must map each sub-status to a list of sub-statuses'
            elif subs.get("initial") and subs["initial"] not in moves:
                errors["sub_statuses"] = '"initial" must be one of the sub-statuses in "moves"'
        roles = self.action_roles or {}
        if not isinstance(roles, dict):
            errors["action_roles"] = "must be an object: action → list of roles"
        else:
            for action, allowed in roles.items():
                if action not in ACTIONS:
                    errors["action_roles"] = f"unknown action {action!r}; known: {', '.join(ACTIONS)}"
                elif not isinstance(allowed, list) or set(allowed) - set(ROLES) - {SYSTEM}:
                    errors["action_roles"] = f"roles for {action!r} must be a list drawn from {ROLES}"
        if errors:
            raise ValidationError(errors)

    @property
    def sub_status_names(self) -> set[str]:
        return set((self.sub_statuses or {}).get("moves", {}))

    def sub_status_move_allowed(self, current: str, target: str) -> bool:
        moves = (self.sub_statuses or {}).get("moves", {})
        if target not in moves:
            return False
        return not current or target in moves.get(current, [])


# Queues without a lifecycle (or with custom lifecycles switched off) use this one.
DEFAULT_LIFECYCLE = Lifecycle(name="default")


class Calendar(models.Model):
    """A business calendar: working hours per weekday in a time zone, minus holidays (its own
    dates and, with `country`, that country's public holidays). A queue with a calendar
    measures its SLA in working time only (workitems.calendars)."""

    name = models.SlugField(max_length=100, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    working_hours = models.JSONField(
        default=dict, blank=True, help_text='{"mon": [["09:00", "17:00"]], …}: local times per weekday'
    )
    holidays = models.JSONField(default=list, blank=True, help_text='dates, e.g. ["2026-12-24"]')
    country = models.CharField(max_length=10, blank=True, help_text="public holidays of this country (e.g. DE)")
    subdivision = models.CharField(max_length=10, blank=True, help_text="and of this state or province (e.g. BY)")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def business(self) -> BusinessCalendar:
        return BusinessCalendar(
            self.time_zone,
            self.working_hours or {},
            frozenset(date.fromisoformat(d) for d in self.holidays or []),
            self.country,
            self.subdivision,
        )

    def clean(self) -> None:
        try:
            BusinessCalendar.validated(
                time_zone=self.time_zone,
                working_hours=self.working_hours,
                holidays=self.holidays if isinstance(self.holidays, list) else [None],
                country=self.country,
                subdivision=self.subdivision,
            )
        except CalendarError as exc:
            raise ValidationError({e["field"].split(".")[0].split("[")[0]: e["message"] for e in exc.errors}) from None


class SlaState(models.TextChoices):
    NONE = "none"
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    MET = "met"
    MISSED = "missed"


MAX_QUEUE_WEIGHT = 100


def default_sensitive_roles() -> list[str]:
    """Who reads a queue's sensitive context keys unless the queue names others."""
    return [ADMIN, SUPERVISOR]


class Queue(models.Model):
    """Where work items wait: who may take them, how they are distributed, their SLA."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    strategy = models.CharField(max_length=20, choices=queue_strategy_choices, default="offer")
    candidate_groups = models.ManyToManyField(Group, blank=True, related_name="workstream_queues")
    capacity_per_user = models.PositiveIntegerField(
        null=True, blank=True, help_text="open items one user may hold in this queue; empty = no limit"
    )
    sla = models.DurationField(null=True, blank=True, help_text="default time to due_at for new items")
    escalation_queue = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="escalates_from"
    )
    lifecycle = models.ForeignKey(Lifecycle, null=True, blank=True, on_delete=models.PROTECT, related_name="queues")
    sensitive_keys = models.JSONField(
        default=list,
        blank=True,
        help_text="context_data keys masked for callers not entitled to them (sensitive_roles)",
    )
    sensitive_roles = models.JSONField(
        default=default_sensitive_roles,
        blank=True,
        help_text="platform roles that read the sensitive keys unmasked (the creating client always does)",
    )
    encrypted_keys = models.JSONField(
        default=list,
        blank=True,
        help_text="context_data keys stored encrypted (the WORKSTREAM_CONTEXT_KEYS ring); read in clear "
        "only by those who read the sensitive keys",
    )
    reservation_timeout = models.DurationField(
        null=True,
        blank=True,
        help_text="push with acceptance: the chosen user has this long to accept before the next candidate",
    )
    active = models.BooleanField(default=True)
    calendar = models.ForeignKey(
        Calendar,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="queues",
        help_text="SLA time runs only in this calendar's working hours; empty = around the clock",
    )
    at_risk_ratio = models.FloatField(
        default=0.75, help_text="an open item is at risk once this share of its allowed time has passed"
    )
    escalation_policy = models.JSONField(
        null=True, blank=True, help_text="ordered levels [{at, actions}]; empty = the default policy"
    )
    max_open = models.PositiveIntegerField(
        null=True, blank=True, help_text="open items this queue should hold; empty = no limit"
    )
    overflow_queue = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="overflows_from",
        help_text="where the capacity check moves the lowest-priority unclaimed items above max_open",
    )
    capacity_alerted_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="set when the queue crossed 90% of max_open; cleared below"
    )
    supervisor_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="supervised_queues",
        help_text="who gets this queue's alerts and daily summary; empty = every supervisor",
    )
    channels = models.JSONField(
        null=True,
        blank=True,
        help_text='the channels of its alerts: [{"type": "slack", "ref": "claims"}, …]; empty = all on',
    )
    critical = models.BooleanField(default=False, help_text="its breaches and capacity alerts also page (PagerDuty)")
    escalation_held_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="an SLA scan ran with features.escalation off (levels held)"
    )
    weight = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_QUEUE_WEIGHT)],
        help_text="claim-next over several queues: the score of its items is multiplied by this (1–100)",
    )
    department = models.ForeignKey(
        "directory.Department",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="queues",
        help_text="new items are for members of this department and its sub-departments only; empty = anyone",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CaseState(models.TextChoices):
    OPEN = "open"
    CLOSED = "closed"


class Case(models.Model):
    """One business matter (a claim, an application) whose work items belong together: items
    join it by `case` (its number) on create; separation of duties can span its items
    (`sod_scope: case`) and its `due_at` is the deadline of the items that name none. Changed
    only through the case commands (workitems.services.cases), audited in stream `case:<id>`."""

    case_number = models.CharField(max_length=100, unique=True)
    title = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    sensitive_keys = models.JSONField(
        default=list,
        blank=True,
        help_text="data keys masked for callers not entitled to them (as a queue's sensitive_keys for context_data)",
    )
    state = models.CharField(max_length=10, choices=CaseState.choices, default=CaseState.OPEN)
    due_at = models.DateTimeField(
        null=True,
        blank=True,
        validators=[validate_time_range],
        help_text="the deadline of the case's items that name none of their own (before the queue's SLA)",
    )
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["-created_at", "-id"], name="case_created_idx")]

    def __str__(self) -> str:
        return self.case_number


class SodScope(models.TextChoices):
    RUN = "run"  # the items of the same workflow run (workflow_id, run_id)
    CASE = "case"  # and the items of the same case


# What a task type's workflow_id and task_name may be: a path segment of
# /task-types/{workflow_id}/{task_name}, so no "/" (and nothing PostgreSQL cannot store).
TASK_KEY_MAX = 200


class TaskType(models.Model):
    """The defaults of one task of a workflow, keyed by (`workflow_id`, `task_name`): a create
    of that task takes them for every field it leaves out (queue, priority, SLA, candidate
    groups, required skills); its items mask its `sensitive_keys` on top of their queue's, and
    their `complete` is checked against its `result_schema` (which replaces the lifecycle's)
    and rendered in the console with its `form`. Changed only through the task-type commands
    (workitems.services.task_types); an inactive one is no longer applied to new items."""

    workflow_id = models.CharField(max_length=TASK_KEY_MAX)
    task_name = models.CharField(max_length=TASK_KEY_MAX)
    workflow_name = models.CharField(max_length=200, blank=True, help_text="the workflow's display name")
    description = models.TextField(blank=True)
    queue = models.ForeignKey(
        Queue,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="task_types",
        help_text="the queue of a create that names none",
    )
    priority = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(100)], help_text="0-100; empty = the create's default (50)"
    )
    sla = models.DurationField(
        null=True, blank=True, help_text="time to due_at, in the queue's calendar; wins over the queue's sla"
    )
    candidate_groups = models.ManyToManyField(Group, blank=True, related_name="workstream_task_types")
    required_skills = models.JSONField(default=list, blank=True)
    sensitive_keys = models.JSONField(
        default=list, blank=True, help_text="context_data keys masked on top of the queue's sensitive_keys"
    )
    result_schema = models.JSONField(
        null=True, blank=True, help_text="JSON Schema of the result of `complete`; replaces the lifecycle's"
    )
    form = models.JSONField(
        null=True,
        blank=True,
        help_text='the console\'s complete form: {"fields": [{"name": property, "label": ..., "help": ...}]} '
        "(order, labels and help of the result's properties)",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workflow_id", "task_name"]
        constraints = [models.UniqueConstraint(fields=["workflow_id", "task_name"], name="tasktype_key_uniq")]

    def __str__(self) -> str:
        return f"{self.workflow_id}/{self.task_name}"


def _lifecycle_of(item: WorkItem) -> Lifecycle:
    if item.queue.lifecycle_id and wsconfig.get().features.lifecycle.custom:
        return item.queue.lifecycle
    return DEFAULT_LIFECYCLE


def _start_enabled(item: WorkItem) -> bool:
    return _lifecycle_of(item).start_step != Lifecycle.START_DISABLED


def _complete_allowed_here(item: WorkItem) -> bool:
    if item.state == State.IN_PROGRESS:
        return True
    return _lifecycle_of(item).start_step in (Lifecycle.START_OPTIONAL, Lifecycle.START_DISABLED)


def _suspend_enabled(item: WorkItem) -> bool:
    return _lifecycle_of(item).allow_suspend


def _release_enabled(item: WorkItem) -> bool:
    return _lifecycle_of(item).allow_release


def _delegate_enabled(item: WorkItem) -> bool:
    return _lifecycle_of(item).allow_delegate


def _is_reserved(item: WorkItem) -> bool:
    return item.reserved_for_id is not None


def _is_optional(item: WorkItem) -> bool:
    return item.optional


def _has_sub_statuses(item: WorkItem) -> bool:
    return bool(_lifecycle_of(item).sub_status_names)


class WorkItem(ConcurrentTransitionMixin, models.Model):
    """Something a person must do, tracked through its lifecycle.

    Transitions (django-fsm-2; each changes only this item's own fields — the
    service layer in `workitems.services` adds the version bump, audit record
    and outbox event in the same transaction):

    | action         | from                               | to                        |
    |----------------|------------------------------------|---------------------------|
    | offer          | CREATED                            | OFFERED                   |
    | assign         | CREATED, OFFERED                   | ASSIGNED                  |
    | claim          | OFFERED                            | ASSIGNED                  |
    | release        | ASSIGNED                           | OFFERED                   |
    | start          | ASSIGNED                           | IN_PROGRESS               |
    | complete       | IN_PROGRESS (ASSIGNED if start is optional/disabled) | COMPLETED |
    | fail           | IN_PROGRESS                        | FAILED                    |
    | suspend        | OFFERED, ASSIGNED, IN_PROGRESS     | SUSPENDED                 |
    | resume         | SUSPENDED                          | the state it left         |
    | delegate       | ASSIGNED, IN_PROGRESS              | ASSIGNED (another user)   |
    | escalate       | any open state                     | same state, level + 1     |
    | cancel         | any open state                     | CANCELLED                 |
    | skip           | any open state (`optional` items)  | CANCELLED, `skipped`      |
    | forward        | OFFERED, ASSIGNED                  | OFFERED to new candidates |
    | set_sub_status | IN_PROGRESS                        | IN_PROGRESS               |
    | reserve        | CREATED, OFFERED                   | OFFERED, held for one user|
    | accept         | OFFERED (reserved)                 | ASSIGNED (the reservee)   |
    | reject         | OFFERED (reserved)                 | OFFERED, reservation gone |
    | move           | CREATED, OFFERED, ASSIGNED         | OFFERED in another queue  |
    |                | IN_PROGRESS, SUSPENDED             | same state, another queue |
    """

    id = models.BigAutoField(primary_key=True)
    workflow_id = models.CharField(max_length=200)
    run_id = models.CharField(max_length=200, blank=True)
    task_name = models.CharField(max_length=200)
    title = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="work_items")
    # The task type whose defaults the create took (its sensitive keys and result schema stay
    # the item's). No index: task types are never deleted (nothing looks items up by it).
    task_type = models.ForeignKey(
        TaskType, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    priority = models.PositiveSmallIntegerField(default=50, validators=[MaxValueValidator(100)])
    due_at = models.DateTimeField(null=True, blank=True, validators=[validate_time_range])
    follow_up_at = models.DateTimeField(null=True, blank=True, validators=[validate_time_range])
    context_data = models.JSONField(default=dict, blank=True)
    candidate_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="candidate_work_items")
    candidate_groups = models.ManyToManyField(Group, blank=True, related_name="candidate_work_items")
    excluded_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="excluded_work_items")
    required_skills = models.JSONField(default=list, blank=True)
    sod_key = models.CharField(max_length=100, blank=True)
    sod_scope = models.CharField(max_length=10, choices=SodScope.choices, default=SodScope.RUN)
    # The case by its number (to_field): the item's representation and the `case` filter read
    # the number from the item's own row, no join.
    case = models.ForeignKey(
        Case,
        to_field="case_number",
        db_column="case_number",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="work_items",
    )
    department = models.ForeignKey(
        "directory.Department",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="only members of this department and its sub-departments are candidates (routing)",
    )
    optional = models.BooleanField(default=False, help_text="may be skipped when no longer needed (skip)")
    skipped = models.BooleanField(default=False, help_text="ended by skip (state CANCELLED, outcome skipped)")
    strategy = models.CharField(max_length=20, choices=strategy_choices, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assigned_work_items",
        db_index=False,  # covered by wi_assignee_state_idx
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    state = FSMField(default=State.CREATED, choices=State.choices, protected=True)
    resume_state = models.CharField(max_length=20, blank=True)
    sub_status = models.CharField(max_length=50, blank=True)
    version = models.PositiveIntegerField(default=1)
    event_seq = models.PositiveIntegerField(default=0, help_text="sequence of the item's last outbox event")
    escalation_level = models.PositiveSmallIntegerField(default=0)
    sla_state = models.CharField(max_length=10, choices=SlaState.choices, default=SlaState.NONE)
    breached_at = models.DateTimeField(null=True, blank=True)
    sla_level = models.PositiveSmallIntegerField(default=0, help_text="escalation-policy levels fired")
    sla_next_at = models.DateTimeField(
        null=True, blank=True, help_text="when the SLA scan must look at this item next (at risk, due, a level)"
    )
    suspended_at = models.DateTimeField(null=True, blank=True)
    sla_started_at = models.DateTimeField(
        null=True, blank=True, help_text="start of the SLA clock; moves out with due_at by the time suspended"
    )
    result = models.JSONField(null=True, blank=True)
    outcome_reason = models.TextField(blank=True)
    callback_url = models.URLField(max_length=1000, blank=True)
    correlation_id = models.CharField(max_length=200, blank=True)
    reserved_for = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="reserved_work_items"
    )
    reserved_until = models.DateTimeField(null=True, blank=True)
    declined_by = models.JSONField(default=list, blank=True, help_text="ids of users who rejected or let lapse")
    return_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="the absent user this item goes back to on return, if untouched",
    )
    return_version = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    offered_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["state"], name="wi_state_idx"),
            models.Index(fields=["assignee", "state"], name="wi_assignee_state_idx"),
            models.Index(fields=["workflow_id", "run_id"], name="wi_workflow_run_idx"),
            # GET /workitems' default order (newest first, keyset on created_at, id): a page is
            # an index walk that stops at the page, however many items there are.
            models.Index(fields=["-created_at", "-id"], name="wi_created_idx"),
            # claim-next order; only OFFERED items can be claimed, so only they are indexed.
            models.Index(
                "queue",
                models.F("priority").desc(),
                "due_at",
                "created_at",
                name="wi_claim_next_idx",
                condition=Q(state="OFFERED"),
            ),
            # the SLA scan: open items whose next SLA moment has come.
            models.Index(
                fields=["sla_next_at"],
                name="wi_sla_next_idx",
                condition=Q(sla_next_at__isnull=False),
            ),
            # open items by deadline.
            models.Index(
                fields=["due_at"],
                name="wi_open_due_idx",
                condition=Q(state__in=["CREATED", "OFFERED", "ASSIGNED", "IN_PROGRESS", "SUSPENDED"]),
            ),
            # the reservation timeout scan
            models.Index(
                fields=["reserved_until"], name="wi_reserved_until_idx", condition=Q(reserved_until__isnull=False)
            ),
            models.Index(fields=["return_to"], name="wi_return_to_idx", condition=Q(return_to__isnull=False)),
            models.Index(
                fields=["queue", "state"],
                name="wi_open_queue_state_idx",
                condition=Q(state__in=["CREATED", "OFFERED", "ASSIGNED", "IN_PROGRESS", "SUSPENDED"]),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(priority__gte=0, priority__lte=100), name="wi_priority_range"),
            models.CheckConstraint(
                condition=Q(assignee__isnull=False) | ~Q(state__in=["ASSIGNED", "IN_PROGRESS"]),
                name="wi_held_has_assignee",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.task_name} ({self.state})"

    @property
    def lifecycle(self) -> Lifecycle:
        return _lifecycle_of(self)

    @property
    def result_schema(self) -> dict | None:
        """The JSON Schema `complete` checks the result against: the item's task type's when it
        sets one (it replaces the lifecycle's), else its lifecycle's."""
        if self.task_type_id is not None and self.task_type.result_schema is not None:
            return self.task_type.result_schema
        return self.lifecycle.result_schema

    @property
    def sensitive_keys(self) -> list[str]:
        """The context_data keys masked for readers not entitled: the queue's and the task type's."""
        keys = list(self.queue.sensitive_keys or [])
        if self.task_type_id is not None:
            keys += [k for k in self.task_type.sensitive_keys or [] if k not in keys]
        return keys

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def outcome(self) -> str | None:
        """How an ended item ended: `completed`, `failed`, `cancelled` or `skipped`; None while open."""
        if self.state not in TERMINAL_STATES:
            return None
        return "skipped" if self.skipped else self.state.lower()

    @property
    def department_code(self) -> str | None:
        return self.department.code if self.department_id else None

    def available_actions(self) -> list[str]:
        """Actions the lifecycle allows from the current state (before any actor check)."""
        return sorted({t.name for t in self.get_available_state_transitions()})

    # --- transitions: own fields only -------------------------------------------------

    def _clear_reservation(self) -> None:
        self.reserved_for = None
        self.reserved_until = None

    def _hand_to(self, user) -> None:
        self.assignee = user
        self.assigned_at = timezone.now()
        self._clear_reservation()

    @transition(field=state, source=State.CREATED, target=State.OFFERED)
    def offer(self) -> None:
        self.assignee = None
        self.offered_at = timezone.now()

    @transition(field=state, source=[State.CREATED, State.OFFERED], target=State.ASSIGNED)
    def assign(self, user) -> None:
        self._hand_to(user)

    @transition(field=state, source=State.OFFERED, target=State.ASSIGNED)
    def claim(self, user) -> None:
        self._hand_to(user)

    @transition(field=state, source=[State.CREATED, State.OFFERED], target=State.OFFERED)
    def reserve(self, user, until) -> None:
        if self.offered_at is None:
            self.offered_at = timezone.now()
        self.reserved_for = user
        self.reserved_until = until

    @transition(field=state, source=State.OFFERED, target=State.ASSIGNED, conditions=[_is_reserved])
    def accept(self, user) -> None:
        self._hand_to(user)

    @transition(field=state, source=State.OFFERED, target=State.OFFERED, conditions=[_is_reserved])
    def reject(self) -> None:
        """The reservee declines, or lets the reservation lapse: they are not asked again."""
        self.declined_by = [*self.declined_by, self.reserved_for_id]
        self._clear_reservation()

    @transition(field=state, source=State.ASSIGNED, target=State.OFFERED, conditions=[_release_enabled])
    def release(self) -> None:
        self.assignee = None
        self.assigned_at = None
        self.offered_at = timezone.now()
        self.return_to = None
        self.return_version = None

    @transition(field=state, source=State.ASSIGNED, target=State.IN_PROGRESS, conditions=[_start_enabled])
    def start(self) -> None:
        self.started_at = timezone.now()
        self.sub_status = (self.lifecycle.sub_statuses or {}).get("initial", "") or ""

    @transition(
        field=state,
        source=[State.IN_PROGRESS, State.ASSIGNED],
        target=State.COMPLETED,
        conditions=[_complete_allowed_here],
    )
    def complete(self, result) -> None:
        now = timezone.now()
        self.result = result
        self.sub_status = ""
        self.completed_at = now
        self.closed_at = now

    @transition(field=state, source=State.IN_PROGRESS, target=State.FAILED)
    def fail(self, reason: str) -> None:
        self.outcome_reason = reason
        self.sub_status = ""
        self.closed_at = timezone.now()

    @transition(
        field=state,
        source=[State.OFFERED, State.ASSIGNED, State.IN_PROGRESS],
        target=State.SUSPENDED,
        conditions=[_suspend_enabled],
    )
    def suspend(self, return_to=None) -> None:
        self.resume_state = self.state
        # Suspended for an absence: it resumes when `return_to` comes back, if untouched.
        self.return_to = return_to
        self.return_version = self.version + 1 if return_to is not None else None

    @transition(
        field=state,
        source=State.SUSPENDED,
        target=RETURN_VALUE(State.OFFERED, State.ASSIGNED, State.IN_PROGRESS),
    )
    def resume(self) -> str:
        back, self.resume_state = self.resume_state, ""
        self.return_to = None
        self.return_version = None
        return back

    @transition(
        field=state,
        source=[State.ASSIGNED, State.IN_PROGRESS],
        target=State.ASSIGNED,
        conditions=[_delegate_enabled],
    )
    def delegate(self, user, return_to=None) -> None:
        self.assignee = user
        self.assigned_at = timezone.now()
        self.started_at = None
        self.sub_status = ""
        self.return_to = return_to
        # The item comes back to `return_to` only if nothing else happens to it first:
        # this delegation is its next version.
        self.return_version = self.version + 1 if return_to is not None else None

    @transition(field=state, source=list(OPEN_STATES), target=None)
    def escalate(
        self, queue: Queue | None = None, priority: int | None = None, sla_level: int | None = None, raise_level=True
    ) -> None:
        if raise_level:
            self.escalation_level += 1
        if queue is not None:
            self.queue = queue
        if priority is not None:
            self.priority = priority
        if sla_level is not None:
            self.sla_level = sla_level

    @transition(field=state, source=list(OPEN_STATES), target=None)
    def sla_at_risk(self) -> None:
        self.sla_state = SlaState.AT_RISK

    @transition(field=state, source=list(OPEN_STATES), target=None)
    def sla_breach(self, at) -> None:
        self.sla_state = SlaState.BREACHED
        self.breached_at = at

    @transition(field=state, source=list(OPEN_STATES), target=State.CANCELLED)
    def cancel(self, reason: str) -> None:
        self.outcome_reason = reason
        self.closed_at = timezone.now()
        self._clear_reservation()

    @transition(field=state, source=list(OPEN_STATES), target=State.CANCELLED, conditions=[_is_optional])
    def skip(self, reason: str = "") -> None:
        """WS-HumanTask's skip: an optional task no longer needed ends, not done and not failed.
        It ends CANCELLED (every count of ended items, the archive and the SLA's met/missed treat
        it as one) with `skipped` set, so its outcome reads `skipped`."""
        self.outcome_reason = reason
        self.closed_at = timezone.now()
        self._clear_reservation()
        self.skipped = True

    @transition(field=state, source=[State.OFFERED, State.ASSIGNED], target=State.OFFERED)
    def forward(self) -> None:
        """WS-HumanTask's forward: the item is offered to other candidates (the service layer
        replaces its candidate lists); whoever held or had it reserved lets it go."""
        self.assignee = None
        self.assigned_at = None
        self.offered_at = timezone.now()
        self.return_to = None
        self.return_version = None
        self.declined_by = []
        self._clear_reservation()

    @transition(
        field=state,
        source=list(OPEN_STATES),
        target=RETURN_VALUE(State.OFFERED, State.IN_PROGRESS, State.SUSPENDED),
    )
    def move(self, queue: Queue) -> str:
        """To another queue. Work nobody has started (CREATED, OFFERED, ASSIGNED) is offered
        there afresh: an ASSIGNED holder is released, a reservation dropped. Started and
        suspended work keeps its holder."""
        self.queue = queue
        if self.state in (State.IN_PROGRESS, State.SUSPENDED):
            return self.state
        self.assignee = None
        self.assigned_at = None
        self.offered_at = timezone.now()
        self.return_to = None
        self.return_version = None
        self.declined_by = []
        self._clear_reservation()
        return State.OFFERED

    @transition(field=state, source=list(OPEN_STATES), target=None)
    def update(self, priority: int | None = None, **dates) -> None:
        """New terms for an open item, its state unchanged: `priority`, `due_at`, `follow_up_at`
        (a date given as None clears it). The SLA fields follow in sla.bookkeep."""
        if priority is not None:
            self.priority = priority
        for name in ("due_at", "follow_up_at"):
            if name in dates:
                setattr(self, name, dates[name])

    @transition(field=state, source=State.IN_PROGRESS, target=None, conditions=[_has_sub_statuses])
    def set_sub_status(self, name: str) -> None:
        self.sub_status = name
