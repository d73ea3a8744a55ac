"""Test data built through the real models and the service layer (no state is set by hand)."""

from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from directory.roles import role_group_name
from workitems import services
from workitems.models import Lifecycle, Queue, WorkItem

_seq = itertools.count(1)


def group(name: str) -> Group:
    return Group.objects.get_or_create(name=name)[0]


def user(username: str, *, roles=(), groups=(), **fields):
    u = get_user_model().objects.create_user(username=username, password="pw-" + username, **fields)
    u.groups.add(*[group(role_group_name(r)) for r in roles], *groups)
    return u


def lifecycle(name: str = "custom", **fields) -> Lifecycle:
    lc = Lifecycle(name=name, **fields)
    lc.full_clean()
    lc.save()
    return lc


def queue(name: str, *, groups=(), **fields) -> Queue:
    q = Queue.objects.create(name=name, **fields)
    q.candidate_groups.set(groups)
    return q


def item_body(queue: Queue, **overrides) -> dict:
    n = next(_seq)
    body = {"workflow_id": f"wf-{n}", "run_id": f"run-{n}", "task_name": "review", "queue": queue.name}
    body.update(overrides)
    return body


def item(*, actor, queue: Queue, **overrides) -> WorkItem:
    return services.work_item_create(actor=actor, data=item_body(queue, **overrides))
