"""Encrypted context keys over REST, the console and the command bus: the creating client and
the sensitive readers get the clear value, the rest `***encrypted***`; what cannot be decrypted
is a 503 problem naming the key, never a 500; nothing at rest holds the clear value."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client

from api.models import IdempotencyRecord
from config import contextkeys
from events import inbound
from events.models import OutboxEvent
from tests import factories
from workitems import crypto
from workitems.models import WorkItem

SSN = "123-45-6789"
CONTEXT = {"ssn": SSN, "name": "Ada"}
MARK = crypto.ENCRYPTED_MARK
PROBLEM = "https://workstream.dev/problems/encryption-unavailable"


@pytest.fixture
def ring(settings):
    settings.CONTEXT_KEY_RING = contextkeys.parse(contextkeys.new_key_entry("k1"))
    return settings.CONTEXT_KEY_RING


@pytest.fixture
def hr(ring, team_a):
    return factories.queue("hr", groups=[team_a], encrypted_keys=["ssn"])


def body(**extra):
    return {"workflow_id": "wf", "task_name": "review", "queue": "hr", "context_data": CONTEXT, **extra}


def raw_text(sql: str, params=()) -> str:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return json.dumps([[str(c) for c in r] for r in cur.fetchall()])


def test_rest_create_and_read(api, svc, alice, sam, hr):
    created = api(svc).post("/api/v1/workitems", body(), format="json")
    assert created.status_code == 201 and created.json()["context_data"] == CONTEXT
    item_id = created.json()["id"]
    assert api(svc).get(f"/api/v1/workitems/{item_id}").json()["context_data"] == CONTEXT
    assert api(sam).get(f"/api/v1/workitems/{item_id}").json()["context_data"] == CONTEXT
    seen = api(alice).get(f"/api/v1/workitems/{item_id}").json()["context_data"]
    assert seen == {"ssn": MARK, "name": "Ada"}
    listed = api(alice).get("/api/v1/workitems?queue=hr").json()["results"]
    assert [r["context_data"] for r in listed] == [{"ssn": MARK, "name": "Ada"}]
    claimed = api(alice).post(f"/api/v1/workitems/{item_id}/claim")
    assert claimed.status_code == 200 and claimed.json()["context_data"]["ssn"] == MARK
    for persona in (svc, sam, alice):
        history = api(persona).get(f"/api/v1/workitems/{item_id}/history")
        assert history.status_code == 200 and SSN not in history.content.decode()
    assert SSN not in raw_text("SELECT context_data::text FROM workitems_workitem")
    assert SSN not in raw_text("SELECT data::text FROM audit_auditrecord")
    assert SSN not in raw_text("SELECT payload::text FROM events_outboxevent")


def test_bulk_create_answers_in_clear_for_the_creator(api, svc, hr):
    created = api(svc).post("/api/v1/workitems/bulk", {"items": [body(), body()]}, format="json")
    assert created.status_code == 201, created.json()
    assert [i["context_data"] for i in created.json()["items"]] == [CONTEXT, CONTEXT]
    assert SSN not in raw_text("SELECT context_data::text FROM workitems_workitem")


def test_the_stored_idempotent_answer_is_encrypted_and_replays(api, settings, svc, hr):
    client = api(svc)
    first = client.post("/api/v1/workitems", body(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post("/api/v1/workitems", body(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content and again.json()["context_data"] == CONTEXT
    stored = bytes(IdempotencyRecord.objects.get(key="k-1").body)
    assert SSN.encode() not in stored and b"Ada" not in stored and stored.startswith(b"\x00sealed-v1:k1:")
    settings.CONTEXT_KEY_RING = contextkeys.parse(contextkeys.new_key_entry("k2"))
    lost = client.post("/api/v1/workitems", body(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert lost.status_code == 503 and lost.json()["type"] == PROBLEM
    assert "encrypted with key 'k1'" in lost.json()["detail"] and WorkItem.objects.count() == 1


def test_an_undecryptable_value_is_a_503_problem_not_a_500(api, settings, svc, alice, sam, hr):
    item_id = api(svc).post("/api/v1/workitems", body(), format="json").json()["id"]
    settings.CONTEXT_KEY_RING = contextkeys.parse(contextkeys.new_key_entry("k2"))
    resp = api(sam).get(f"/api/v1/workitems/{item_id}")
    assert resp.status_code == 503 and resp["Content-Type"] == "application/problem+json"
    problem = resp.json()
    assert problem["type"] == PROBLEM and problem["status"] == 503
    assert problem["detail"] == (
        f"context_data.ssn of work item {item_id} is encrypted with key 'k1', "
        "which the key ring (WORKSTREAM_CONTEXT_KEYS) does not hold"
    )
    assert "Traceback" not in resp.content.decode()
    assert api(alice).get(f"/api/v1/workitems/{item_id}").json()["context_data"]["ssn"] == MARK  # no decryption
    sealed = WorkItem.objects.get(pk=item_id).context_data["ssn"]
    WorkItem.objects.filter(pk=item_id).update(context_data={"ssn": {"$enc": sealed["$enc"][:-4] + "AAAA"}})
    settings.CONTEXT_KEY_RING = None
    resp = api(sam).get(f"/api/v1/workitems/{item_id}")
    assert resp.status_code == 503 and "no context key ring is configured" in resp.json()["detail"]


def test_without_a_ring_creates_are_refused_and_queues_cannot_ask_for_it(api, settings, ada, svc, hr):
    settings.CONTEXT_KEY_RING = None
    resp = api(svc).post("/api/v1/workitems", body(), format="json")
    assert resp.status_code == 503 and resp.json()["type"] == PROBLEM
    assert "queue hr encrypts context keys ssn, but no context key ring is configured" in resp.json()["detail"]
    assert not WorkItem.objects.exists() and not OutboxEvent.objects.exists()
    resp = api(ada).post("/api/v1/queues", {"name": "kyc", "encrypted_keys": ["iban"]}, format="json")
    assert resp.status_code == 400 and [e["field"] for e in resp.json()["errors"]] == ["encrypted_keys"]


def test_the_queue_api_shows_and_validates_encrypted_keys(api, ada, sam, ring):
    resp = api(ada).post("/api/v1/queues", {"name": "kyc", "encrypted_keys": ["iban", "iban"]}, format="json")
    assert resp.status_code == 201 and resp.json()["encrypted_keys"] == ["iban"]
    assert api(ada).get("/api/v1/queues/kyc").json()["encrypted_keys"] == ["iban"]
    for bad in ("iban", [1], None):
        resp = api(ada).patch("/api/v1/queues/kyc", {"encrypted_keys": bad}, format="json")
        assert resp.status_code == 400 and [e["field"] for e in resp.json()["errors"]] == ["encrypted_keys"], bad
    assert api(sam).patch("/api/v1/queues/kyc", {"encrypted_keys": []}, format="json").status_code == 403
    assert api(ada).patch("/api/v1/queues/kyc", {"encrypted_keys": []}, format="json").json()["encrypted_keys"] == []


def test_the_stored_form_cannot_be_sent(api, svc, hr):
    resp = api(svc).post("/api/v1/workitems", body(context_data={"ssn": {"$enc": "v1:k1:AAAA"}}), format="json")
    assert resp.status_code == 400 and resp.json()["errors"][0]["field"] == "context_data.ssn"


def test_the_console_shows_the_marker_to_a_worker_and_the_value_to_a_supervisor(settings, svc, alice, sam, hr):
    item = factories.item(actor=svc, queue=hr, context_data=CONTEXT)
    pages = {}
    for user in (alice, sam):
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        resp = client.get(f"/console/items/{item.pk}")
        assert resp.status_code == 200
        pages[user.username] = resp.content.decode()
    assert SSN not in pages["alice"] and MARK in pages["alice"]
    assert SSN in pages["sam"] and MARK not in pages["sam"]
    settings.CONTEXT_KEY_RING = None
    client = Client()
    client.force_login(sam, backend="django.contrib.auth.backends.ModelBackend")
    resp = client.get(f"/console/items/{item.pk}")
    assert resp.status_code == 503 and "no context key ring is configured" in resp.content.decode()


def test_a_create_from_the_bus_is_sealed_and_its_event_carries_the_marker(svc, sam, hr):
    cmd = {"command_id": "c-1", "command": "create", "actor": "svc", "data": body()}
    assert inbound.apply(inbound.parse(json.dumps(cmd).encode())) == "applied"
    item = WorkItem.objects.get()
    assert crypto.is_sealed(item.context_data["ssn"])
    event = OutboxEvent.objects.get(event_type="command.applied.v1")
    assert event.payload["work_item"]["context_data"] == {"ssn": MARK, "name": "Ada"}
    assert SSN not in raw_text("SELECT payload::text FROM events_outboxevent")
    assert SSN not in raw_text("SELECT row_to_json(c)::text FROM events_inboxcommand c")
