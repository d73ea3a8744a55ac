"""Reading archived items: by id, under the live items' visibility rule (policy.may_see)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from archive.models import ArchivedAuditRecord, ArchivedWorkItem
from workitems import policy
from workitems.errors import NotFound
from workitems.models import Queue, WorkItem

_FIELDS = {f.attname: f for f in WorkItem._meta.concrete_fields}


def as_work_item(archived: ArchivedWorkItem) -> WorkItem:
    """The archived row as an unsaved, read-only WorkItem (`item.archived` is True)."""
    # The row is keyed by column (the case's is `case_number`); a column added after the item
    # was archived (sod_scope, case_number) reads as its default.
    row = archived.row
    values = [f.to_python(row[f.column]) if f.column in row else f.get_default() for f in _FIELDS.values()]
    item = WorkItem.from_db(None, list(_FIELDS), values)
    item.archived = True
    return item


def archived_item_get_for(*, actor, item_id) -> WorkItem:
    """The archived item `item_id` if `actor` could have seen it live; NotFound otherwise.

    The rule is policy.may_see over what the archive keeps: the item's assignee, its queue's
    membership as it is now (groups and valid role assignments) and the users and groups the
    item named. An item whose queue was deleted since is not found (its representation names
    the queue)."""
    if actor is None or not actor.is_authenticated:
        raise NotFound(f"work item {item_id} not found")
    try:
        pk = int(item_id)
        if not 0 < pk < 2**63:
            raise ValueError(pk)  # beyond bigint: no such item (and no DataError)
        archived = ArchivedWorkItem.objects.get(pk=pk)
    except (ArchivedWorkItem.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"work item {item_id} not found") from None
    sees_all = policy.sees_everything(actor)
    queue = Queue.objects.filter(pk=archived.queue_id)
    visible = sees_all or policy.may_see(
        sees_everything=False,
        user_id=actor.pk,
        assignee_id=archived.assignee_id,
        queue_member=queue.filter(policy.queue_member_filter(actor, queue_ref="pk")).exists(),
        item_user_ids=archived.candidate_user_ids,
        item_group_ids=archived.candidate_group_ids,
        user_group_ids=policy.group_ids_of(actor),
    )
    if not visible or not queue.exists():
        raise NotFound(f"work item {item_id} not found")
    item = as_work_item(archived)
    users = get_user_model().objects
    item.list_names = {
        "candidate_users": list(users.filter(pk__in=archived.candidate_user_ids).values_list("username", flat=True)),
        "candidate_groups": list(
            Group.objects.filter(pk__in=archived.candidate_group_ids).values_list("name", flat=True)
        ),
        "excluded_users": list(users.filter(pk__in=archived.excluded_user_ids).values_list("username", flat=True)),
    }
    return item


def archived_history(item_id: int):
    """The archived item's audit records, oldest first."""
    return ArchivedAuditRecord.objects.filter(stream=f"workitem:{item_id}").order_by("seq")
