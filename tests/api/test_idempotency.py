"""Idempotency-Key on POST: replay byte for byte, 422 for another body, 409 while in flight, per client."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import connection
from rest_framework.test import APIClient

from api.models import IdempotencyRecord
from events.models import OutboxEvent
from tests import factories
from tests.api.conftest import bearer
from tests.api.helpers import assert_problem, create_body, item_state
from workitems.models import WorkItem

KEY = "HTTP_IDEMPOTENCY_KEY"


def _outbox_for(item_id) -> int:
    return OutboxEvent.objects.filter(aggregate_type="workitem", aggregate_id=str(item_id)).count()


# --- sequential semantics ---------------------------------------------------------------------------


def test_retry_replays_the_first_response_byte_for_byte_and_changes_nothing(api, svc, queue):
    client = api(svc)
    body = create_body(queue)
    first = client.post("/api/v1/workitems", body, format="json", **{KEY: "k-1"})
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    item_id = first.json()["id"]
    again = client.post("/api/v1/workitems", body, format="json", **{KEY: "k-1"})
    assert again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"] and again["ETag"] == first["ETag"]
    assert again["Content-Type"] == first["Content-Type"]
    assert WorkItem.objects.count() == 1 and _outbox_for(item_id) == 1


def test_replay_is_the_first_response_even_after_the_item_changed(api, svc, alice, queue):
    client = api(svc)
    body = create_body(queue)
    first = client.post("/api/v1/workitems", body, format="json", **{KEY: "k-2"})
    api(alice).post(f"/api/v1/workitems/{first.json()['id']}/claim")
    again = client.post("/api/v1/workitems", body, format="json", **{KEY: "k-2"})
    assert again.content == first.content and again.json()["state"] == "OFFERED"
    assert item_state(first.json()["id"])[0] == "ASSIGNED"


def test_same_key_with_a_different_body_is_422_and_changes_nothing(api, svc, queue):
    client = api(svc)
    client.post("/api/v1/workitems", create_body(queue, title="one"), format="json", **{KEY: "k-3"})
    resp = client.post("/api/v1/workitems", create_body(queue, title="two"), format="json", **{KEY: "k-3"})
    assert_problem(resp, 422, "idempotency-key-reused", detail_contains="k-3")
    assert WorkItem.objects.count() == 1
    assert WorkItem.objects.get().title == "one"


def test_same_key_on_another_endpoint_is_422(api, svc, queue, make_item):
    client = api(svc)
    item = make_item()
    client.post(f"/api/v1/workitems/{item.pk}/cancel", {}, format="json", **{KEY: "k-4"})
    resp = client.post("/api/v1/workitems", {}, format="json", **{KEY: "k-4"})
    assert_problem(resp, 422, "idempotency-key-reused")


def test_keys_are_per_client(api, svc, queue):
    other = factories.user("svc-2", roles=["service"])
    body = create_body(queue)
    a = api(svc).post("/api/v1/workitems", body, format="json", **{KEY: "shared"})
    b = api(other).post("/api/v1/workitems", body, format="json", **{KEY: "shared"})
    assert a.status_code == b.status_code == 201
    assert "Idempotent-Replayed" not in b
    assert a.json()["id"] != b.json()["id"]
    assert WorkItem.objects.count() == 2


def test_an_action_is_replayed_not_repeated(api, alice, make_item):
    item = make_item()
    client = api(alice)
    first = client.post(f"/api/v1/workitems/{item.pk}/claim", {}, format="json", **{KEY: "claim-1"})
    again = client.post(f"/api/v1/workitems/{item.pk}/claim", {}, format="json", **{KEY: "claim-1"})
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again["ETag"] == '"2"'
    assert item_state(item.pk)[:2] == ("ASSIGNED", 2)
    # Without the key the same request is a new one: it is refused now.
    assert_problem(client.post(f"/api/v1/workitems/{item.pk}/claim"), 409, "already-claimed")


def test_a_failed_request_is_not_stored_and_may_be_retried(api, svc, queue):
    client = api(svc)
    body = create_body(queue, queue="not-yet")
    assert_problem(client.post("/api/v1/workitems", body, format="json", **{KEY: "k-5"}), 404, "not-found")
    assert not IdempotencyRecord.objects.exists()
    factories.queue("not-yet")
    assert client.post("/api/v1/workitems", body, format="json", **{KEY: "k-5"}).status_code == 201


@pytest.mark.parametrize("key", ["", "x" * 256])
def test_bad_key_is_400(api, svc, queue, key):
    resp = api(svc).post("/api/v1/workitems", create_body(queue), format="json", **{KEY: key})
    assert_problem(resp, 400, "validation-error", detail_contains="Idempotency-Key")
    assert not WorkItem.objects.exists()


def test_record_is_stored_in_the_same_transaction_as_the_change(api, svc, queue):
    resp = api(svc).post("/api/v1/workitems", create_body(queue), format="json", **{KEY: "k-6"})
    record = IdempotencyRecord.objects.get(key="k-6")
    assert record.client == f"user:{svc.pk}" and record.status_code == 201
    assert bytes(record.body) == resp.content


# --- concurrency --------------------------------------------------------------------------------------

THREADS = 50


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_posts_create_exactly_one_item(svc, queue):
    key = f"conc-{uuid.uuid4().hex}"
    body = create_body(queue, workflow_id=f"wf-{key}")
    auth = bearer(svc)  # a real JWT: each thread authenticates on its own connection
    barrier = threading.Barrier(THREADS)
    responses: list = [None] * THREADS
    errors: list = []

    def post(i: int) -> None:
        try:
            client = APIClient(raise_request_exception=False)
            client.credentials(HTTP_AUTHORIZATION=auth)
            barrier.wait(timeout=30)
            if i >= THREADS // 2:
                time.sleep((i - THREADS // 2) * 0.06)  # the second half trickles in: in flight or replayed
            responses[i] = client.post("/api/v1/workitems", body, format="json", **{KEY: key})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert all(r is not None for r in responses)

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r]
    replays = [r for r in responses if r.status_code == 201 and r.get("Idempotent-Replayed") == "true"]
    in_flight = [r for r in responses if r.status_code == 409]
    print(f"idempotency race: 1 created, {len(replays)} replays, {len(in_flight)} in flight")
    assert len(created) == 1, statuses
    assert len(created) + len(replays) + len(in_flight) == THREADS
    first = created[0]
    for r in replays:
        assert r.content == first.content and r["Location"] == first["Location"]
    for r in in_flight:
        assert_problem(r, 409, "idempotency-in-flight")

    items = WorkItem.objects.filter(workflow_id=body["workflow_id"])
    assert items.count() == 1
    item_id = items.get().pk
    assert first.json()["id"] == item_id
    assert _outbox_for(item_id) == 1
    assert IdempotencyRecord.objects.filter(key=key).count() == 1

    # A retry after all of them finished replays the first 201 exactly.
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=auth)
    retry = client.post("/api/v1/workitems", body, format="json", **{KEY: key})
    assert retry.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    # The same key with another body is refused.
    other = client.post("/api/v1/workitems", {**body, "title": "other"}, format="json", **{KEY: key})
    assert_problem(other, 422, "idempotency-key-reused")
    assert WorkItem.objects.filter(workflow_id=body["workflow_id"]).count() == 1
    assert _outbox_for(item_id) == 1
