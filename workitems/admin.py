"""Operators' view of work items, queues and lifecycles.

Work items are read-only here: every change goes through an admin action
that calls the service layer (audited with channel "admin").
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse

from config.context import acting
from workitems import services
from workitems.errors import WorkstreamError
from workitems.models import Lifecycle, Queue, WorkItem


@admin.register(Lifecycle)
class LifecycleAdmin(admin.ModelAdmin):
    list_display = ("name", "start_step", "allow_suspend", "allow_release", "allow_delegate")
    search_fields = ("name",)


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("name", "strategy", "capacity_per_user", "sla", "escalation_queue", "lifecycle", "active")
    list_filter = ("strategy", "active")
    search_fields = ("name", "description")
    filter_horizontal = ("candidate_groups",)


class ReassignForm(forms.Form):
    user = forms.ModelChoiceField(queryset=get_user_model().objects.filter(is_active=True).order_by("username"))


def _apply(request, queryset, label: str, command) -> None:
    done, failed = 0, []
    with acting(channel="admin"):
        for item in queryset.only("pk"):
            try:
                command(item.pk)
                done += 1
            except WorkstreamError as exc:
                failed.append(f"#{item.pk}: {exc.detail}")
    if done:
        messages.success(request, f"{label}: {done} item(s).")
    for line in failed[:20]:
        messages.warning(request, line)


@admin.register(WorkItem)
class WorkItemAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "task_name",
        "queue",
        "state",
        "assignee",
        "priority",
        "due_at",
        "escalation_level",
        "created_at",
    )
    list_filter = ("state", "queue", "escalation_level")
    search_fields = ("=id", "workflow_id", "run_id", "task_name", "title", "correlation_id")
    list_select_related = ("queue", "assignee")
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ("cancel_items", "escalate_items", "reassign_items")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + ["candidate_users", "candidate_groups", "excluded_users"]

    def has_add_permission(self, request):
        return False  # items are created by clients, over the API or the event bus

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Cancel selected items")
    def cancel_items(self, request, queryset):
        _apply(
            request,
            queryset,
            "Cancelled",
            lambda pk: services.work_item_cancel(item_id=pk, actor=request.user, reason="cancelled in the admin"),
        )

    @admin.action(description="Escalate selected items")
    def escalate_items(self, request, queryset):
        _apply(
            request,
            queryset,
            "Escalated",
            lambda pk: services.work_item_escalate(item_id=pk, actor=request.user, reason="escalated in the admin"),
        )

    @admin.action(description="Reassign selected items to a user")
    def reassign_items(self, request, queryset):
        if "apply" in request.POST:
            form = ReassignForm(request.POST)
            if form.is_valid():
                user = form.cleaned_data["user"]
                _apply(
                    request, queryset, f"Reassigned to {user.username}", lambda pk: _reassign(pk, request.user, user)
                )
                return None
        else:
            form = ReassignForm()
        return TemplateResponse(
            request,
            "admin/workitems/reassign.html",
            {**self.admin_site.each_context(request), "form": form, "items": list(queryset[:200])},
        )


def _reassign(item_id: int, actor, user):
    """Held items are delegated, unheld ones assigned: both are the service layer's commands."""
    item = WorkItem.objects.only("state").get(pk=item_id)
    if item.state in ("ASSIGNED", "IN_PROGRESS"):
        return services.work_item_delegate(item_id=item_id, actor=actor, user=user)
    return services.work_item_assign(item_id=item_id, actor=actor, user=user)
