"""An inbound `create` command over the real broker that names only its task: the create takes
its task type's queue and defaults, as a REST create does (the same create schema and command)."""

from __future__ import annotations

import uuid

import pytest

from events.models import InboxCommand
from tests.events.test_inbound import _start_consumers, _wait, command_bus  # noqa: F401 - the fixture
from workitems import services
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_bus_create_without_a_queue_takes_its_task_type(events_config, command_bus, background, names, svc, queue):  # noqa: F811
    events_config({"relay": {"nudge": "none"}})
    services.task_type_create(
        actor=svc, data={"workflow_id": "wf-bus", "task_name": "review", "queue": queue.name, "priority": 85}
    )
    (consumer,) = _start_consumers(background, names)
    made, refused = str(uuid.uuid4()), str(uuid.uuid4())
    command_bus.send(
        {
            "command_id": made,
            "command": "create",
            "actor": "svc",
            "data": {"workflow_id": "wf-bus", "task_name": "review"},
        }
    )
    command_bus.send(
        {
            "command_id": refused,
            "command": "create",
            "actor": "svc",
            "data": {"workflow_id": "wf-bus", "task_name": "x"},
        }
    )
    _wait(lambda: consumer.handled >= 2)
    _wait(lambda: InboxCommand.objects.exclude(outcome="").count() == 2)
    item = WorkItem.objects.get(workflow_id="wf-bus")
    assert (item.queue_id, item.priority, item.task_type.task_name) == (queue.pk, 85, "review")
    assert InboxCommand.objects.get(command_id=made).outcome == "applied"
    rejected = InboxCommand.objects.get(command_id=refused)
    assert rejected.outcome == "rejected" and rejected.error["type"] == "validation-error"
    assert rejected.error["errors"] == [{"field": "queue", "message": "this field is required"}]
    assert command_bus.dead_letters() == []
