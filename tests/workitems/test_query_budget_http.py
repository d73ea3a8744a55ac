"""The statement budget over HTTP (issue 13): each request costs its command's budget
(tests/workitems/test_query_budget.py) plus what the request itself needs. Counted with the
same execute wrapper, through the real authentication (an API key for the service client, a
JWT for the worker), on a connection already open (a server's persistent connection): no
`SELECT 1` health check per request. Run with `-s` to see every request's statements."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from api.models import ServiceApiKey
from tests import factories
from tests.querycount import count_statements
from tests.workitems.test_query_budget import BUDGET

BASE = "/api/v1/workitems"
# What a request may add to its command (the budget: two). It adds authentication (one
# statement, which also reads the caller's groups, so the command's own read of them goes) and
# the access log's record of the request (api/access_log.py, one INSERT): one more in all.
HTTP_EXTRA = 2
# With an Idempotency-Key: the key's advisory lock, the stored response's read, and the new
# response's store (three). The lock and the read cannot be one statement: its snapshot would
# be taken before the lock is won, and could miss a response committed in between (the change
# would run twice). With a key a request is the command plus HTTP_EXTRA plus these three, over
# the "at most 2 more" (docs/performance.md says why).
IDEMPOTENCY_EXTRA = 3


def key_client(user) -> APIClient:
    _, key = ServiceApiKey.objects.create_key(name=f"{user.username}-key", user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def jwt_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def request(name, send, *, budget=None, status=200):
    budget = BUDGET[name] + HTTP_EXTRA if budget is None else budget
    with count_statements() as seen:
        resp = send()
    print(seen.report(f"HTTP {name}"))  # noqa: T201 - `pytest -s` shows today's counts
    assert resp.status_code == status, resp.content[:500]
    assert not [s for s in seen.counted if s.strip().upper() == "SELECT 1"], seen.report("a health check")
    assert len(seen) <= budget, seen.report(f"HTTP {name} is over its budget of {budget}")
    return resp.json() if resp.content else None


@pytest.fixture
def engine(svc):
    return key_client(svc)


@pytest.fixture
def worker(alice):
    return jwt_client(alice)


def test_create_over_http(engine, queue):
    body = factories.item_body(queue)
    item = request("create (pull queue)", lambda: engine.post(BASE, body, format="json"), status=201)
    assert item["state"] == "OFFERED"


def test_create_with_an_idempotency_key(engine, queue):
    body = factories.item_body(queue)
    budget = BUDGET["create (pull queue)"] + HTTP_EXTRA + IDEMPOTENCY_EXTRA
    send = lambda: engine.post(BASE, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")  # noqa: E731
    item = request("create (pull queue)", send, budget=budget, status=201)
    again = request("create (pull queue)", send, budget=HTTP_EXTRA + 2, status=201)  # the replay: lock, read
    assert again == item


def test_a_worker_lifecycle_over_http(engine, worker, queue):
    created = engine.post(BASE, factories.item_body(queue), format="json").json()
    item = request("claim", lambda: worker.post(f"{BASE}/{created['id']}/claim", {}, format="json"))
    assert item["state"] == "ASSIGNED"
    item = request("start", lambda: worker.post(f"{BASE}/{item['id']}/start", {}, format="json"))
    assert item["state"] == "IN_PROGRESS"
    done = lambda: worker.post(f"{BASE}/{item['id']}/complete", {"result": {"ok": True}}, format="json")  # noqa: E731
    assert request("complete", done)["state"] == "COMPLETED"


def test_claim_next_and_release_over_http(engine, worker, queue):
    created = engine.post(BASE, factories.item_body(queue), format="json").json()
    item = request("claim-next", lambda: worker.post(f"{BASE}/claim-next", {}, format="json"))
    assert item["id"] == created["id"]
    item = request("release", lambda: worker.post(f"{BASE}/{item['id']}/release", {}, format="json"))
    assert item["state"] == "OFFERED"


def test_cancel_over_http(engine, queue):
    created = engine.post(BASE, factories.item_body(queue), format="json").json()
    item = request("cancel", lambda: engine.post(f"{BASE}/{created['id']}/cancel", {"reason": "x"}, format="json"))
    assert item["state"] == "CANCELLED"
