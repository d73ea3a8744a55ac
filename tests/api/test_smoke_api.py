import pytest
from rest_framework.test import APIClient


@pytest.fixture
def client_for():
    def make(user):
        c = APIClient()
        c.force_authenticate(user)
        return c

    return make


def test_create_claim_complete_over_api(client_for, svc, alice, queue):
    r = client_for(svc).post(
        "/api/v1/workitems", {"workflow_id": "wf", "task_name": "t", "queue": queue.name}, format="json"
    )
    assert r.status_code == 201, r.content
    item = r.json()
    assert r["Location"] == f"/api/v1/workitems/{item['id']}"
    assert r["ETag"] == '"1"'
    a = client_for(alice)
    r = a.post(f"/api/v1/workitems/{item['id']}/claim", format="json")
    assert r.status_code == 200, r.content
    r = a.post(f"/api/v1/workitems/{item['id']}/complete", {"result": {"ok": 1}}, format="json", HTTP_IF_MATCH='"1"')
    assert r.status_code == 412, r.content
    assert r["Content-Type"] == "application/problem+json"
    r = a.post(f"/api/v1/workitems/{item['id']}/complete", {"result": {"ok": 1}}, format="json")
    assert r.status_code == 409
    body = r.json()
    assert body["type"].endswith("/invalid-transition") and "start" in body["allowed_actions"]
    r = a.post("/api/v1/workitems/claim-next", {}, format="json")
    assert r.status_code == 204
