"""Query filters of GET /workitems (docs/api.md, "Filters"), as a django-filter FilterSet."""

from __future__ import annotations

import django_filters as df
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from workitems import schemas
from workitems.models import OPEN_STATES, SlaState, State, WorkItem
from workitems.policy import claimable_filter

_BOOL_CHOICES = [("true", "true"), ("false", "false")]


def _strict_bool(method: str, help_text: str) -> df.ChoiceFilter:
    """`true`/`false` only: anything else is a 400, not silently "no filter"."""
    return df.ChoiceFilter(choices=_BOOL_CHOICES, method=method, help_text=help_text)


class _TimeField(forms.Field):
    """An ISO 8601 date-time in the range every input time keeps (schemas.parse_iso_time);
    without a zone it is UTC. An impossible date (`2026-02-30`) or a year PostgreSQL keeps
    but Python cannot read is a 400 naming the parameter, not a 500."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        parsed, message = schemas.parse_iso_time(value, zone_required=False)
        if message:
            raise ValidationError(message, code="invalid")
        return parsed


class TimeFilter(df.IsoDateTimeFilter):
    """A time query parameter (`due_before=…`); every list's time filters use this one."""

    field_class = _TimeField


ORDERINGS = ("priority", "-priority", "due_at", "-due_at", "created_at", "-created_at")


class WorkItemFilter(df.FilterSet):
    state = df.MultipleChoiceFilter(choices=State.choices)
    queue = df.CharFilter(field_name="queue__name")
    assignee = df.CharFilter(method="filter_assignee", help_text="a username, or `me`")
    candidate = df.ChoiceFilter(choices=[("me", "me")], method="filter_candidate", help_text="`me`")
    workflow_id = df.CharFilter()
    run_id = df.CharFilter()
    task_name = df.CharFilter()
    case = df.CharFilter(field_name="case_id", help_text="a case's number: the items of that case")
    priority_min = df.NumberFilter(field_name="priority", lookup_expr="gte")
    priority_max = df.NumberFilter(field_name="priority", lookup_expr="lte")
    due_before = TimeFilter(field_name="due_at", lookup_expr="lt")
    due_after = TimeFilter(field_name="due_at", lookup_expr="gte")
    overdue = _strict_bool("filter_overdue", "`true`: open items past due_at; `false`: the others")
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")
    escalated = _strict_bool("filter_escalated", "`true`: escalation_level > 0")
    sla_state = df.MultipleChoiceFilter(choices=SlaState.choices)
    at_risk = _strict_bool("filter_at_risk", "`true`: open items at risk of missing due_at (sla_state at_risk)")
    breached = _strict_bool("filter_breached", "`true`: open items past due_at (sla_state breached)")
    ordering = df.ChoiceFilter(choices=[(o, o) for o in ORDERINGS], method="filter_noop", help_text="sort order")

    class Meta:
        model = WorkItem
        fields: list[str] = []

    def filter_assignee(self, qs, name, value):
        user = self.request.user if self.request is not None else None
        if value == "me":
            return qs.filter(assignee_id=user.pk if user is not None else None)
        return qs.filter(assignee__username=value)

    def filter_candidate(self, qs, name, value):
        return qs.filter(claimable_filter(self.request.user))

    def filter_overdue(self, qs, name, value):
        overdue = Q(due_at__lt=timezone.now(), state__in=OPEN_STATES)
        return qs.filter(overdue) if value == "true" else qs.exclude(overdue)

    def filter_escalated(self, qs, name, value):
        return qs.filter(escalation_level__gt=0) if value == "true" else qs.filter(escalation_level=0)

    def filter_at_risk(self, qs, name, value):
        return qs.filter(sla_state=SlaState.AT_RISK) if value == "true" else qs.exclude(sla_state=SlaState.AT_RISK)

    def filter_breached(self, qs, name, value):
        return qs.filter(sla_state=SlaState.BREACHED) if value == "true" else qs.exclude(sla_state=SlaState.BREACHED)

    def filter_noop(self, qs, name, value):
        return qs  # applied by the cursor paginator, which must know the order
