"""An inbound bus create (RabbitMQ, the real consumer) joins a case by the same create body."""

from __future__ import annotations

import uuid

import pytest

from events.models import InboxCommand
from tests.events.test_inbound import _start_consumers, _wait
from workitems import services
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_bus_create_joins_the_case(events_config, command_bus, background, names, svc, queue):
    events_config({"relay": {"nudge": "none"}})
    services.case_create(actor=svc, data={"case_number": "BUS-1", "due_at": "2031-01-01T00:00:00Z"})
    _start_consumers(background, names)
    ok, unknown = str(uuid.uuid4()), str(uuid.uuid4())
    data = {"workflow_id": "wf-bus", "task_name": "review", "queue": queue.name}
    command_bus.send({"command_id": ok, "command": "create", "actor": "svc", "data": {**data, "case": "BUS-1"}})
    command_bus.send({"command_id": unknown, "command": "create", "actor": "svc", "data": {**data, "case": "NO-1"}})
    _wait(lambda: InboxCommand.objects.filter(command_id__in=[ok, unknown]).exclude(outcome="").count() == 2)
    item = WorkItem.objects.get(workflow_id="wf-bus")
    assert item.case_id == "BUS-1" and item.due_at.isoformat() == "2031-01-01T00:00:00+00:00"
    assert InboxCommand.objects.get(command_id=ok).outcome == "applied"
    assert InboxCommand.objects.get(command_id=unknown).outcome != "applied"
