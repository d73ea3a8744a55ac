"""Requests that are wrong before they reach a service: every one is a 4xx problem, never a 500."""

from __future__ import annotations

import json

import pytest

from tests.api.helpers import assert_field_error, assert_problem, create_body
from workitems.models import WorkItem

# Every POST endpoint that takes a JSON body, with the item it needs (if any).
POST_ENDPOINTS = [
    "/api/v1/workitems",
    "/api/v1/workitems/bulk",
    "/api/v1/workitems/claim-next",
    "/api/v1/workitems/{id}/complete",
    "/api/v1/workitems/{id}/claim",
    "/api/v1/queues",
]


@pytest.fixture
def posting(api, admin, make_item):
    """(client, url) for an endpoint: an admin, who may call every one of them."""
    item = make_item()

    def make(template: str):
        return api(admin), template.format(id=item.pk)

    return make


@pytest.mark.parametrize("template", POST_ENDPOINTS)
def test_malformed_json_is_400_malformed_request(posting, template):
    client, url = posting(template)
    resp = client.post(url, data='{"workflow_id": "x",', content_type="application/json")
    body = assert_problem(resp, 400, "malformed-request")
    assert "JSON" in body["detail"]


@pytest.mark.parametrize("template", POST_ENDPOINTS)
@pytest.mark.parametrize("raw", ["[1, 2]", '"text"', "42", "true", "[]"])
def test_non_object_body_is_400(posting, template, raw):
    client, url = posting(template)
    resp = client.post(url, data=raw, content_type="application/json")
    body = assert_problem(resp, 400, "validation-error")
    assert "object" in body["detail"]


@pytest.mark.parametrize("template", POST_ENDPOINTS)
def test_form_encoded_body_is_415(posting, template):
    client, url = posting(template)
    resp = client.post(url, data="workflow_id=x&task_name=t", content_type="application/x-www-form-urlencoded")
    body = assert_problem(resp, 415, "unsupported-media-type")
    assert "application/x-www-form-urlencoded" in body["detail"]


def test_multipart_body_is_415(api, svc, queue):
    resp = api(svc).post("/api/v1/workitems", {"workflow_id": "x", "task_name": "t", "queue": queue.name})
    assert_problem(resp, 415, "unsupported-media-type")
    assert not WorkItem.objects.exists()


@pytest.mark.parametrize("template", POST_ENDPOINTS)
def test_oversized_body_is_413_and_nothing_is_read(posting, template, api_config):
    api_config({"performance": {"maxBodyBytes": 2048}})
    client, url = posting(template)
    payload = json.dumps({"workflow_id": "w", "task_name": "t", "queue": "q", "description": "x" * 3000})
    resp = client.post(url, data=payload, content_type="application/json")
    body = assert_problem(resp, 413, "payload-too-large")
    assert "2048" in body["detail"]


def test_oversized_body_at_the_default_limit(api, svc, queue):
    """The default performance.maxBodyBytes (1 MiB): one byte over is 413, nothing is created."""
    limit = 1_048_576
    body = create_body(queue, description="")
    filler = limit + 1 - len(json.dumps(body))
    body["description"] = "x" * filler
    raw = json.dumps(body)
    assert len(raw) == limit + 1
    resp = api(svc).post("/api/v1/workitems", data=raw, content_type="application/json")
    assert_problem(resp, 413, "payload-too-large")
    assert not WorkItem.objects.exists()


def test_body_at_the_limit_is_accepted(api, svc, queue, api_config):
    api_config({"performance": {"maxBodyBytes": 4096}})
    body = create_body(queue, description="")
    body["description"] = "x" * (4096 - len(json.dumps(body)))
    raw = json.dumps(body)
    assert len(raw) == 4096
    resp = api(svc).post("/api/v1/workitems", data=raw, content_type="application/json")
    assert resp.status_code == 201, resp.content


@pytest.mark.parametrize("template", POST_ENDPOINTS)
def test_empty_body_is_never_a_500(posting, template):
    client, url = posting(template)
    resp = client.post(url, data="", content_type="application/json")
    assert resp.status_code < 500, resp.content
    if resp.status_code >= 400:
        assert_problem(resp, resp.status_code, resp.json()["type"].rsplit("/", 1)[1])


def test_unknown_route_is_404_problem(api, alice):
    resp = api(alice).get("/api/v1/no-such-thing")
    assert_problem(resp, 404, "not-found")


def test_unknown_action_is_404_problem_listing_the_actions(api, alice, make_item):
    item = make_item()
    resp = api(alice).post(f"/api/v1/workitems/{item.pk}/frobnicate", {}, format="json")
    body = assert_problem(resp, 404, "not-found", detail_contains="frobnicate")
    assert "claim" in body["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("put", "/api/v1/workitems/{id}"), ("delete", "/api/v1/workitems/{id}"), ("patch", "/api/v1/workitems")],
)
def test_wrong_method_is_405_problem_with_allow(api, admin, make_item, method, path):
    item = make_item()
    resp = getattr(api(admin), method)(path.format(id=item.pk), {}, format="json")
    assert_problem(resp, 405, "method-not-allowed")
    assert resp["Allow"]


def test_request_id_is_echoed_on_success_and_on_problems(api, alice, make_item):
    item = make_item()
    client = api(alice)
    ok = client.get(f"/api/v1/workitems/{item.pk}", HTTP_X_REQUEST_ID="req-abc-123")
    assert ok.status_code == 200 and ok["X-Request-ID"] == "req-abc-123"
    bad = client.get("/api/v1/workitems/999999999", HTTP_X_REQUEST_ID="req-def-456")
    assert_problem(bad, 404, "not-found")
    assert bad["X-Request-ID"] == "req-def-456"
    generated = client.get(f"/api/v1/workitems/{item.pk}")
    assert generated["X-Request-ID"]


def test_validation_problem_lists_every_field(api, svc, queue):
    resp = api(svc).post("/api/v1/workitems", {"queue": queue.name, "priority": 500}, format="json")
    body = assert_problem(resp, 400, "validation-error")
    assert_field_error(body, "workflow_id", "required")
    assert_field_error(body, "task_name", "required")
    assert_field_error(body, "priority")
    fields = [e["field"] for e in body["errors"]]
    assert body["detail"].split(":")[0] in fields


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/workitems", {"workflow_id": "a\u0000b"}),
        ("/api/v1/workitems", {"title": "a\u0000b"}),
        ("/api/v1/workitems", {"queue": "a\u0000b"}),
        ("/api/v1/workitems", {"context_data": {"k": "a\u0000b"}}),
        ("/api/v1/workitems", {"context_data": {"a\u0000": 1}}),
        ("/api/v1/workitems", {"candidate_users": ["a\u0000"]}),
        ("/api/v1/workitems/bulk", {"run_id": "x\u0000"}),
        ("/api/v1/queues", {"name": "nulq", "description": "a\u0000"}),
        ("/api/v1/queues", {"name": "nulq", "candidate_groups": ["a\u0000"]}),
    ],
    ids=[
        "workflow_id",
        "title",
        "queue",
        "context value",
        "context key",
        "candidate_users",
        "bulk",
        "queue desc",
        "queue groups",
    ],
)
def test_nul_character_in_a_string_is_400_not_500(api, admin, queue, path, body):
    if path == "/api/v1/workitems":
        payload = create_body(queue, **body)
    elif path == "/api/v1/workitems/bulk":
        payload = {"items": [create_body(queue, **body)]}
    else:
        payload = body
    resp = api(admin).post(path, payload, format="json")
    assert_problem(resp, 400, "validation-error")
    assert not WorkItem.objects.exists()


@pytest.mark.parametrize(
    "url",
    ["/api/v1/workitems?workflow_id=a%00b", "/api/v1/workitems?queue=a%00b", "/api/v1/audit?actor=a%00b"],
)
def test_nul_character_in_a_filter_is_400(api, sam, url):
    assert_problem(api(sam).get(url), 400, "validation-error")


def test_nul_character_in_an_action_body_is_400(api, sam, make_item):
    item = make_item()
    resp = api(sam).post(f"/api/v1/workitems/{item.pk}/cancel", {"reason": "a\u0000"}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "reason")
    item.refresh_from_db()
    assert item.state == "OFFERED"


# --- a browser's Accept: errors are problem JSON whatever is asked for (issue 10, item 11) ----

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("accept", ["text/html", BROWSER_ACCEPT, "text/html;q=1, application/json;q=0.1"])
@pytest.mark.parametrize(
    ("who", "method", "path", "status", "kind"),
    [
        ("alice", "get", "/api/v1/workitems/999999", 404, "not-found"),
        ("alice", "get", "/api/v1/workitems?priority_min=abc", 400, "validation-error"),
        ("alice", "get", "/api/v1/workitems?cursor=forged", 400, "validation-error"),
        ("alice", "post", "/api/v1/workitems/{id}/cancel", 403, "not-allowed"),
        ("alice", "get", "/api/v1/audit", 403, "not-allowed"),
        ("alice", "delete", "/api/v1/workitems/{id}", 405, "method-not-allowed"),
        ("alice", "put", "/api/v1/workitems", 405, "method-not-allowed"),
        (None, "get", "/api/v1/workitems", 401, "unauthorized"),
        ("alice", "get", "/api/v1/no-such-route", 404, "not-found"),
    ],
)
def test_a_browser_gets_problem_json_for_an_error(api, alice, make_item, accept, who, method, path, status, kind):
    item = make_item()
    client = api(alice if who else None)
    resp = getattr(client, method)(path.format(id=item.pk), HTTP_ACCEPT=accept)
    body = assert_problem(resp, status, kind)  # labelled problem+json, and it parses as JSON
    assert not resp.content.lstrip().startswith(b"<"), resp.content[:200]
    assert body["status"] == status


def test_a_browser_gets_problem_json_for_a_bad_body(api, svc, queue):
    resp = api(svc).post("/api/v1/workitems", {"queue": queue.name}, format="json", HTTP_ACCEPT="text/html")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "workflow_id")
    assert not resp.content.lstrip().startswith(b"<")


def test_a_browser_still_gets_the_browsable_page_for_a_success(api, alice, make_item):
    """The decision (docs/api.md): HTML for a browser's successful GET, labelled as HTML."""
    item = make_item()
    resp = api(alice).get(f"/api/v1/workitems/{item.pk}", HTTP_ACCEPT="text/html")
    assert resp.status_code == 200
    assert resp["Content-Type"].startswith("text/html")
    assert resp.content.lstrip().startswith(b"<")
