"""Operators' view of work items, queues, lifecycles and task types.

Work items are read-only here: their page shows the audit trail and the actions allowed
now, and every change goes through a bulk action that calls the service layer (audited
with channel "admin"). Queues, lifecycle definitions and task types are created and changed
through their commands (`services.queue_create` / `queue_update`, `lifecycle_create` /
`lifecycle_update`, `task_type_create` / `task_type_update`), never written directly;
they are not deleted here (items PROTECT them, and a deletion would leave no audit record).
Cases are opened with `case_create` and closed and reopened by actions that call
`case_close` / `case_reopen`; their fields do not change afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Q
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.duration import duration_iso_string
from django.utils.html import format_html

from audit.models import AuditRecord
from config.admin_lists import BigTableAdmin, fixed_choices_filter
from config.context import acting
from directory.admin import _errors_to_form
from stats import selectors as stats_selectors
from workitems import services
from workitems.errors import FeatureDisabled, StaleVersion, ValidationFailed, WorkstreamError
from workitems.models import ACTIONS, OPEN_STATES, Calendar, Case, Lifecycle, Queue, SlaState, TaskType, WorkItem
from workitems.services.cases import CASE_FIELDS
from workitems.services.definitions import CALENDAR_FIELDS, FIELDS, LIFECYCLE_FIELDS
from workitems.services.task_types import KEY_FIELDS, TASK_TYPE_FIELDS

# --- queues and lifecycle definitions: saved by their commands ---------------------------


def _wire(value: Any) -> Any:
    """A cleaned form value in the commands' input shape (the REST body's)."""
    if isinstance(value, timedelta):
        return duration_iso_string(value)
    if isinstance(value, datetime):  # a case's due_at
        return value.isoformat()
    if isinstance(value, models.QuerySet):  # candidate groups
        return sorted(obj.name for obj in value)
    if isinstance(value, models.Model):  # escalation queue, lifecycle
        return value.name
    return value


class CommandForm(forms.ModelForm):
    """A definition's form whose save is its command.

    The command runs as the form's last check, once every field is valid, inside the
    admin's transaction: its ValidationFailed lands on the form's fields (and nothing is
    written, the command's savepoint is rolled back); when it succeeds the form is valid
    and `saved` holds what the command returned. The admin's save_model and save_related
    write nothing themselves.
    """

    # Set per request by CommandAdmin.get_form: the admin user, the model's commands and the
    # key its update command takes (a name; a task type's workflow_id and task_name).
    actor = None
    commands: tuple[Callable[..., models.Model], Callable[..., models.Model]]
    key_fields: tuple[str, ...] = ("name",)

    def full_clean(self) -> None:
        super().full_clean()
        if not self.is_bound or self.errors:
            return
        new = self.instance.pk is None
        names = self.fields if new else self.changed_data
        data = {name: _wire(self.cleaned_data[name]) for name in names}
        if not new and not data:
            self.saved = self.instance
            return
        create, update = self.commands
        try:
            with acting(channel="admin"):
                if new:
                    self.saved = create(actor=self.actor, data=data)
                else:
                    key = {k: getattr(self.instance, k) for k in self.key_fields}
                    self.saved = update(actor=self.actor, **key, data=data)
        except WorkstreamError as exc:
            _errors_to_form(self, exc)


class CommandAdmin(admin.ModelAdmin):
    """The admin of a definition saved by its commands (see CommandForm); names are fixed.
    A subclass names the command's fields (`fields`) and its (create, update) `commands`."""

    form = CommandForm
    commands: tuple[Callable[..., models.Model], Callable[..., models.Model]]
    key_fields: tuple[str, ...] = ("name",)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        attrs = {"actor": request.user, "commands": self.commands, "key_fields": self.key_fields}
        return type(form.__name__, (form,), attrs)

    def get_readonly_fields(self, request, obj=None):
        return self.key_fields if obj is not None else ()

    def save_form(self, request, form, change):
        return form.saved

    def save_model(self, request, obj, form, change):
        """The command has saved it (CommandForm.full_clean)."""

    def save_related(self, request, form, formsets, change):
        """The command has set the relations (candidate groups) too."""

    def has_delete_permission(self, request, obj=None):
        return False  # work items PROTECT them; no command deletes one


@admin.register(Lifecycle)
class LifecycleAdmin(CommandAdmin):
    fields = LIFECYCLE_FIELDS
    commands = (services.lifecycle_create, services.lifecycle_update)
    list_display = ("name", "start_step", "allow_suspend", "allow_release", "allow_delegate")
    search_fields = ("name",)


@admin.register(Calendar)
class CalendarAdmin(CommandAdmin):
    fields = CALENDAR_FIELDS
    commands = (services.calendar_create, services.calendar_update)
    list_display = ("name", "time_zone", "country")
    search_fields = ("name",)


@admin.register(Queue)
class QueueAdmin(CommandAdmin):
    fields = FIELDS
    commands = (services.queue_create, services.queue_update)
    list_display = ("name", "strategy", "capacity_per_user", "sla", "escalation_queue", "lifecycle", "active")
    list_filter = ("strategy", "active")
    search_fields = ("name", "description")
    filter_horizontal = ("candidate_groups", "supervisor_groups")

    class Media:
        css = {"all": ("workitems/admin.css",)}

    def change_view(self, request, object_id, form_url="", extra_context=None):
        queue = self.get_object(request, unquote(object_id))
        if queue is not None:
            extra_context = {**(extra_context or {}), "queue_figures": queue_figures(queue)}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Case)
class CaseAdmin(CommandAdmin):
    """Cases: opened by `case_create` (the add form); closed and reopened by the actions."""

    fields = CASE_FIELDS
    commands = (services.case_create, None)  # no command changes a case's fields
    list_display = ("case_number", "title", "state", "due_at", "created_at", "closed_at")
    list_filter = ("state",)
    search_fields = ("case_number", "title")
    ordering = ("-id",)
    actions = ("close_cases", "reopen_cases")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (*CASE_FIELDS, "state", "version", "created_by", "created_at", "updated_at", "closed_at")

    def _transition(self, request, queryset, label: str, command) -> None:
        numbers = dict(queryset.values_list("pk", "case_number"))
        _apply(request, queryset, label, lambda pk: command(actor=request.user, case_number=numbers[pk]), "case")

    @admin.action(description="Close selected cases (refused while an item is open)")
    def close_cases(self, request, queryset):
        self._transition(request, queryset, "Closed", services.case_close)

    @admin.action(description="Reopen selected cases")
    def reopen_cases(self, request, queryset):
        self._transition(request, queryset, "Reopened", services.case_reopen)


@admin.register(TaskType)
class TaskTypeAdmin(CommandAdmin):
    """Task types, created and changed by their commands (services.task_type_create /
    task_type_update), audited like queue changes; deactivate one instead of deleting it."""

    fields = TASK_TYPE_FIELDS
    commands = (services.task_type_create, services.task_type_update)
    key_fields = KEY_FIELDS
    list_display = ("workflow_id", "task_name", "workflow_name", "queue", "priority", "sla", "active")
    list_filter = ("active",)
    list_select_related = ("queue",)
    search_fields = ("workflow_id", "task_name", "workflow_name")
    filter_horizontal = ("candidate_groups",)


def queue_figures(queue: Queue) -> dict[str, Any]:
    """The queue page's live figures: the statistics' maintained counters (the same as
    GET /queues/{name}/stats), so the page costs the same at any number of items."""
    return stats_selectors.queue_figures([queue.pk]).get(queue.pk, {})


# --- work items: read-only, changed by bulk actions -------------------------------------


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=services.MAX_REASON, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class ReassignForm(forms.Form):
    user = forms.ModelChoiceField(queryset=get_user_model().objects.filter(is_active=True).order_by("username"))


def _apply(request, queryset, label: str, command: Callable[[int], Any], noun: str = "item") -> None:
    """Run `command` on each selected item, each in its own transaction (the command's),
    as the admin user; report what was done and what was not. A switched-off feature
    stops the run with one error: it would refuse every item alike."""
    done, failed = 0, []
    with acting(channel="admin"):
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                command(pk)
            except FeatureDisabled as exc:
                messages.error(request, f"{label}: {exc.detail}")
                break
            except WorkstreamError as exc:
                failed.append(f"#{pk}: {exc.detail}")
            else:
                done += 1
    if done:
        messages.success(request, f"{label}: {done} {noun}(s).")
    for line in failed[:20]:
        messages.warning(request, line)
    if len(failed) > 20:
        messages.warning(request, f"… and {len(failed) - 20} more not done.")


def _audit_trail(item_id) -> list[AuditRecord]:
    records = list(AuditRecord.objects.filter(work_item_id=item_id).order_by("seq"))
    for rec in records:
        rec.data_json = json.dumps(rec.data, sort_keys=True, ensure_ascii=False)
    return records


# The list's filters: fixed choices (no SELECT DISTINCT), each narrowed to what an index covers.
# Overdue is the API's `overdue` (open, past due_at: wi_open_due_idx), at risk the SLA scan's
# mark (only open items with a due date carry it, so the same partial index bounds the search).
SlaFilter = fixed_choices_filter(
    "SLA",
    "sla",
    [
        ("overdue", "overdue", lambda: Q(state__in=OPEN_STATES, due_at__lt=timezone.now())),
        ("at_risk", "at risk", Q(state__in=OPEN_STATES, due_at__isnull=False, sla_state=SlaState.AT_RISK)),
    ],
)
EscalationFilter = fixed_choices_filter(
    "escalation level (open items)",
    "escalated",
    [
        ("1", "1", Q(state__in=OPEN_STATES, escalation_level=1)),
        ("2", "2", Q(state__in=OPEN_STATES, escalation_level=2)),
        ("3", "3 or more", Q(state__in=OPEN_STATES, escalation_level__gte=3)),
        ("any", "any", Q(state__in=OPEN_STATES, escalation_level__gte=1)),
    ],
)


def sla_flag(item: WorkItem, now) -> str | None:
    """ "overdue", "at-risk" or None: the row's highlight, by the same rules as SlaFilter."""
    if item.state not in OPEN_STATES:
        return None
    if item.due_at is not None and item.due_at < now:
        return "overdue"
    if item.sla_state == SlaState.AT_RISK:
        return "at-risk"
    return None


def _action_forms(item: WorkItem, allowed: list[str]) -> list[dict[str, Any]]:
    """One form per action allowed now: its name and the inputs it takes (ACTIONS[a].args)."""
    queues = None
    forms_ = []
    for name in allowed:
        args = ACTIONS[name].args
        if "queue" in args and queues is None:
            queues = list(Queue.objects.filter(active=True).exclude(pk=item.queue_id).values_list("name", flat=True))
        forms_.append({"name": name, "label": name.replace("_", " "), "args": args, "queues": queues or []})
    return forms_


def _action_arguments(action: str, post) -> dict[str, Any]:
    """The command's arguments from the item page's form; ValidationFailed names a bad one."""
    args: dict[str, Any] = {}
    for name in ACTIONS[action].args:
        value = post.get(name, "")
        if name == "result":
            try:
                value = json.loads(value) if value.strip() else None
            except ValueError:
                raise ValidationFailed([{"field": "result", "message": "is not valid JSON"}]) from None
            if value is not None and not isinstance(value, dict):
                raise ValidationFailed([{"field": "result", "message": "must be a JSON object"}])
        args[name] = value
    return args


@admin.register(WorkItem)
class WorkItemAdmin(BigTableAdmin):
    """Work items, read-only: the list stays cheap at millions of rows (no COUNT(*), no
    DISTINCT, filters and search that indexes answer, sorted by id only); the item page runs
    the actions allowed now through the service layer."""

    list_display = (
        "id",
        "task_name",
        "queue",
        "state",
        "sla",
        "assignee",
        "priority",
        "due_at",
        "escalation_level",
        "created_at",
    )
    list_filter = ("state", "queue", SlaFilter, EscalationFilter)
    list_select_related = ("queue", "assignee")
    ordering = ("-id",)
    # Any other order is a sort of the whole (filtered) table: ids follow creation anyway.
    sortable_by = ("id",)
    search_help_text = "An item's id, or its exact workflow_id."
    actions = ("cancel_items", "escalate_items", "reassign_items")

    class Media:
        css = {"all": ("workitems/admin.css",)}

    def get_search_results(self, request, queryset, search_term):
        """Exact id or workflow_id: both are index lookups (the primary key, wi_workflow_run_idx);
        a substring search would read every row."""
        term = search_term.strip()
        if not term:
            return queryset, False
        q = Q(workflow_id=term)
        if term.isdigit() and int(term) < 2**63:
            q |= Q(pk=int(term))
        return queryset.filter(q), False

    @admin.display(description="SLA")
    def sla(self, obj):
        flag = sla_flag(obj, timezone.now())
        if flag is None:
            return obj.get_sla_state_display() if obj.sla_state != SlaState.NONE else "–"
        return format_html('<span class="ws-sla ws-sla-{}">{}</span>', flag, flag.replace("-", " "))

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + ["candidate_users", "candidate_groups", "excluded_users"]

    def has_add_permission(self, request):
        return False  # items are created by clients, over the API or the event bus

    def has_change_permission(self, request, obj=None):
        return False  # the page shows the item; its actions change it

    def has_delete_permission(self, request, obj=None):
        return False

    def has_act_permission(self, request):
        """Who may run the actions: Django's change permission on work items (the commands
        then check the actor's platform roles, item by item)."""
        return super().has_change_permission(request)

    def get_urls(self):
        act = path(
            "<path:object_id>/act/",
            self.admin_site.admin_view(self.act_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_act",
        )
        return [act, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        item = self.get_object(request, unquote(object_id))
        if item is not None:
            allowed = services.allowed_actions_for(item, request.user)
            flag = sla_flag(item, timezone.now())
            extra_context = {
                **(extra_context or {}),
                "audit_records": _audit_trail(item.pk),
                "allowed_actions": allowed,
                "action_forms": _action_forms(item, allowed) if self.has_act_permission(request) else [],
                "item_version": item.version,
                "sla_flag": flag,
                "sla_label": (flag or "").replace("-", " "),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def act_view(self, request, object_id):
        """One action on one item, from a button of its page: the command runs as the admin
        user, channel "admin", guarded by the version the page showed; whatever it refuses
        is a message on the page, never an error page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_act_permission(request):
            raise PermissionDenied
        item = self.get_object(request, unquote(object_id))
        if item is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        page = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[item.pk])
        action = request.POST.get("action", "")
        if action not in services.COMMANDS or not ACTIONS[action].route:
            messages.error(request, f"unknown action {action!r}")
            return redirect(page)
        try:
            expected = int(request.POST.get("version", ""))
        except ValueError:
            messages.error(request, f"{action}: the page sent no version; reload it and try again.")
            return redirect(page)
        try:
            args = _action_arguments(action, request.POST)
            with acting(channel="admin"):
                done = services.COMMANDS[action](item_id=item.pk, actor=request.user, expected_version=expected, **args)
        except StaleVersion as exc:
            messages.error(
                request,
                f"{action}: not done. The item changed meanwhile (this page showed version "
                f"{exc.expected}, it is now at version {exc.current}): look at it again and retry.",
            )
        except WorkstreamError as exc:
            messages.error(request, f"{action}: not done. {exc.detail}")
        else:
            messages.success(request, f"{action}: done; the item is {done.state} (version {done.version}).")
        return redirect(page)

    def history_view(self, request, object_id, extra_context=None):
        """The item's history is its audit trail (the admin never changes an item itself)."""
        item = self.get_object(request, unquote(object_id))
        if item is not None:
            extra_context = {**(extra_context or {}), "audit_records": _audit_trail(item.pk)}
        return super().history_view(request, object_id, extra_context)

    def _bulk(self, request, queryset, *, form_class, verb: str, label: str, command: Callable[[int, dict], Any]):
        """An action's own form page (reason or target user), then `command` on each item."""
        if "apply" in request.POST:
            form = form_class(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                _apply(request, queryset, label.format(**data), lambda pk: command(pk, data))
                return None
        else:
            form = form_class()
        count = queryset.count()
        return TemplateResponse(
            request,
            "admin/workitems/bulk_action.html",
            {
                **self.admin_site.each_context(request),
                "title": f"{verb} {count} work item{'' if count == 1 else 's'}",
                "opts": self.opts,
                "verb": verb,
                "form": form,
                "count": count,
                "items": list(queryset.order_by("pk")[:200]),
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across") == "1",
                "action": request.POST.get("action", ""),
            },
        )

    @admin.action(description="Cancel selected items…", permissions=["act"])
    def cancel_items(self, request, queryset):
        return self._bulk(
            request,
            queryset,
            form_class=ReasonForm,
            verb="Cancel",
            label="Cancelled",
            command=lambda pk, data: services.work_item_cancel(item_id=pk, actor=request.user, reason=data["reason"]),
        )

    @admin.action(description="Escalate selected items…", permissions=["act"])
    def escalate_items(self, request, queryset):
        return self._bulk(
            request,
            queryset,
            form_class=ReasonForm,
            verb="Escalate",
            label="Escalated",
            command=lambda pk, data: services.work_item_escalate(item_id=pk, actor=request.user, reason=data["reason"]),
        )

    @admin.action(description="Reassign selected items to a user…", permissions=["act"])
    def reassign_items(self, request, queryset):
        return self._bulk(
            request,
            queryset,
            form_class=ReassignForm,
            verb="Reassign",
            label="Reassigned to {user.username}",
            command=lambda pk, data: services.work_item_reassign(item_id=pk, actor=request.user, user=data["user"]),
        )
