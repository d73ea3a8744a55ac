"""Lifecycle: start, complete, fail, suspend, resume, cancel, skip, set a sub-status."""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction

from config.observability import WORKITEM_COMPLETE_LATENCY_MS
from workitems.models import WorkItem
from workitems.services._core import execute


@transaction.atomic
def work_item_start(*, item_id: int, actor, expected_version: int | None = None) -> WorkItem:
    """The assignee starts work (ASSIGNED → IN_PROGRESS)."""
    return execute(action="start", item_id=item_id, actor=actor, expected_version=expected_version, target_user=actor)


@transaction.atomic
def work_item_complete(*, item_id: int, actor, result: Any = None, expected_version: int | None = None) -> WorkItem:
    """The assignee completes the item with `result` (checked against the lifecycle's schema)."""
    t0 = time.perf_counter()
    result = {} if result is None else result
    item = execute(
        action="complete",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        target_user=actor,
        args={"result": result},
        transition_kwargs={"result": result},
    )
    WORKITEM_COMPLETE_LATENCY_MS.observe((time.perf_counter() - t0) * 1000)
    return item


@transaction.atomic
def work_item_fail(*, item_id: int, actor, reason: str = "", expected_version: int | None = None) -> WorkItem:
    """The assignee reports that the work cannot be done."""
    return execute(
        action="fail",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"reason": reason},
        transition_kwargs={"reason": reason},
        audit_data={"reason": reason},
    )


@transaction.atomic
def work_item_suspend(*, item_id: int, actor, reason: str = "", expected_version: int | None = None) -> WorkItem:
    """Put an open item on hold; resume returns it to the state it left."""
    return execute(
        action="suspend",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"reason": reason},
        audit_data={"reason": reason} if reason else {},
    )


@transaction.atomic
def work_item_resume(*, item_id: int, actor, expected_version: int | None = None) -> WorkItem:
    """Take a SUSPENDED item back to the state it was suspended from."""
    return execute(action="resume", item_id=item_id, actor=actor, expected_version=expected_version)


def _end(action: str, *, item_id: int, actor, reason: str, expected_version: int | None) -> WorkItem:
    """cancel / skip: the item ends CANCELLED, with the caller's reason audited."""
    return execute(
        action=action,
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"reason": reason},
        transition_kwargs={"reason": reason},
        audit_data={"reason": reason} if reason else {},
    )


@transaction.atomic
def work_item_cancel(*, item_id: int, actor, reason: str = "", expected_version: int | None = None) -> WorkItem:
    """Withdraw an open item (the creating client or a supervisor)."""
    return _end("cancel", item_id=item_id, actor=actor, reason=reason, expected_version=expected_version)


@transaction.atomic
def work_item_skip(*, item_id: int, actor, reason: str = "", expected_version: int | None = None) -> WorkItem:
    """End an open `optional` item that is no longer needed (WS-HumanTask's skip): CANCELLED
    with outcome `skipped` (the creating client or a supervisor, as for cancel)."""
    return _end("skip", item_id=item_id, actor=actor, reason=reason, expected_version=expected_version)


@transaction.atomic
def work_item_set_sub_status(*, item_id: int, actor, sub_status: str, expected_version: int | None = None) -> WorkItem:
    """Move an IN_PROGRESS item between the lifecycle's named sub-statuses."""
    return execute(
        action="set_sub_status",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"sub_status": sub_status},
        transition_kwargs={"name": sub_status},
        audit_data={"sub_status": sub_status},
    )
