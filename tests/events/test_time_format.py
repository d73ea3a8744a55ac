"""One time format everywhere: RFC 3339 in UTC with `Z` (config/timefmt.py).

An item goes create -> claim -> start -> complete through the API; every time string in the
API's answers, in the outbox events (the envelope as stored and the bytes the relay
publishes) and in the audit API is written the same way.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from events.models import OutboxEvent
from events.relay import rows_by_event_ids

pytestmark = pytest.mark.django_db

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
LOOKS_LIKE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
TIME_KEYS = re.compile(r"(_at|_until|^at)$")


def time_strings(value, path="$"):
    """(path, string) for every string that is a time: by its look, or by its key's name."""
    if isinstance(value, dict):
        for key, inner in value.items():
            here = f"{path}.{key}"
            if TIME_KEYS.search(key) and inner is not None and not isinstance(inner, dict | list):
                yield here, inner
            else:
                yield from time_strings(inner, here)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from time_strings(inner, f"{path}[{i}]")
    elif isinstance(value, str) and LOOKS_LIKE_TIME.match(value):
        yield path, value


def assert_all_z(label: str, document) -> int:
    found = list(time_strings(document))
    wrong = [(p, v) for p, v in found if not (isinstance(v, str) and RFC3339_Z.match(v))]
    assert not wrong, f"{label}: times not in RFC 3339 UTC `Z` form: {wrong}"
    return len(found)


def client(user) -> APIClient:
    c = APIClient(raise_request_exception=False)
    c.force_authenticate(user)
    return c


def walk(svc, alice, due) -> tuple[int, list[dict]]:
    """Create (as the service), claim, start and complete (as alice) through the API; the answers."""
    created = client(svc).post(
        "/api/v1/workitems",
        {
            "workflow_id": "wf",
            "run_id": "r1",
            "task_name": "review",
            "title": "t",
            "queue": "team-a-queue",
            "due_at": due.isoformat(),
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    item_id = created.json()["id"]
    answers = [created.json()]
    for action in ("claim", "start", "complete"):
        body = {"result": {"ok": True}} if action == "complete" else {}
        resp = client(alice).post(f"/api/v1/workitems/{item_id}/{action}", body, format="json")
        assert resp.status_code == 200, (action, resp.content)
        answers.append(resp.json())
    answers.append(client(alice).get(f"/api/v1/workitems/{item_id}").json())
    assert answers[-1]["state"] == "COMPLETED"
    return item_id, answers


def test_every_time_of_an_items_life_is_written_in_one_format(svc, alice, sam, queue):
    # a due time sent with another offset: stored, evented and audited in UTC with `Z`
    due = (timezone.now() + timedelta(days=2)).astimezone(timezone.get_fixed_timezone(120))
    item_id, answers = walk(svc, alice, due)
    # the create answer is left to the next test
    assert sum(assert_all_z("API", a) for a in answers[1:]) >= 4 * 4

    events = list(OutboxEvent.objects.filter(aggregate_type="workitem", aggregate_id=str(item_id)).order_by("sequence"))
    assert len(events) >= 4
    stored = sum(assert_all_z(f"envelope {e.event_type}", e.envelope()) for e in events)
    published = [json.loads(row.body()) for row in rows_by_event_ids([e.id for e in events]).values()]
    assert sum(assert_all_z("published body", b) for b in published) == stored
    assert all(RFC3339_Z.match(b["occurred_at"]) for b in published)
    last = events[-1].envelope()["payload"]["work_item"]
    assert RFC3339_Z.match(last["completed_at"]) and RFC3339_Z.match(last["due_at"])

    audit = client(sam).get(f"/api/v1/audit?work_item={item_id}")
    assert audit.status_code == 200, audit.content
    records = audit.json()["results"]
    assert len(records) >= 4
    assert assert_all_z("audit API", audit.json()) >= len(records)
    history = client(sam).get(f"/api/v1/workitems/{item_id}/history")
    assert history.status_code == 200, history.content
    assert_all_z("history API", history.json())
    # and the chain still verifies (new records hash what they store)
    verify = client(sam).get("/api/v1/audit/verify")
    assert verify.json()["ok"] is True, verify.json()


def test_the_create_answer_writes_a_due_time_sent_with_an_offset_in_utc(svc, alice, queue):
    due = (timezone.now() + timedelta(days=2)).astimezone(timezone.get_fixed_timezone(120))
    _, answers = walk(svc, alice, due)
    assert_all_z("create answer", answers[0])
