"""Escalation: raise an item's escalation level and re-route what nobody holds."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from config import wsconfig
from workitems.errors import FeatureDisabled
from workitems.models import Queue, State, WorkItem
from workitems.services._core import Command, execute


@transaction.atomic
def work_item_escalate(*, item_id: int, actor=None, reason: str = "", expected_version: int | None = None) -> WorkItem:
    """Raise the escalation level; an item nobody holds moves to the queue's escalation queue."""
    if not wsconfig.get().features.escalation:
        raise FeatureDisabled("escalation is switched off", toggle="features.escalation")
    audit_data: dict[str, Any] = {"reason": reason} if reason else {}
    transition_kwargs: dict[str, Any] = {}

    def reroute(cmd: Command) -> None:
        queue = cmd.item.queue
        if queue.escalation_queue_id and cmd.item.state in (State.CREATED, State.OFFERED):
            target = Queue.objects.get(pk=queue.escalation_queue_id)
            transition_kwargs["queue"] = target
            audit_data.update(from_queue=queue.name, to_queue=target.name)

    return execute(
        action="escalate",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"reason": reason},
        transition_kwargs=transition_kwargs,
        audit_data=audit_data,
        prepare=reroute,
    )
