"""The generated OpenAPI document agrees with docs/api.md and with what the API really sends."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.api.helpers import create_body

API_MD_CREATE_FIELDS = {
    "workflow_id",
    "run_id",
    "task_name",
    "title",
    "description",
    "queue",
    "priority",
    "due_at",
    "context_data",
    "candidate_users",
    "candidate_groups",
    "excluded_users",
    "required_skills",
    "sod_key",
    "assignee",
    "strategy",
    "callback_url",
    "correlation_id",
}
API_MD_ITEM_EXTRA = {
    "id",
    "state",
    "sub_status",
    "assignee",
    "version",
    "escalation_level",
    "created_at",
    "updated_at",
    "assigned_at",
    "started_at",
    "completed_at",
    "result",
    "allowed_actions",
}
API_MD_QUEUE_FIELDS = {
    "name",
    "description",
    "strategy",
    "candidate_groups",
    "capacity_per_user",
    "sla",
    "escalation_queue",
    "lifecycle",
    "active",
}


@pytest.fixture(scope="module")
def document(django_db_setup, django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        resp = Client().get("/openapi.json", HTTP_ACCEPT="application/json")
    assert resp.status_code == 200
    return json.loads(resp.content)


def _schema(document, name: str) -> dict:
    return document["components"]["schemas"][name]


def _ref_name(ref: dict) -> str:
    return ref["$ref"].rsplit("/", 1)[1]


def _operation(document, method: str, path: str) -> dict:
    return document["paths"][path][method]


def test_create_body_has_every_api_md_field(document):
    op = _operation(document, "post", "/api/v1/workitems")
    body = op["requestBody"]["content"]["application/json"]["schema"]
    props = _schema(document, _ref_name(body))["properties"]
    assert set(props) >= API_MD_CREATE_FIELDS
    # `queue` is required unless the task type gives one: the document cannot say so, its text does
    assert set(_schema(document, _ref_name(body))["required"]) == {"workflow_id", "task_name"}
    assert "task type" in props["queue"]["description"]
    assert props["priority"]["minimum"] == 0 and props["priority"]["maximum"] == 100


def test_item_representation_in_the_document_is_what_the_api_sends(document, api, svc, queue):
    op = _operation(document, "get", "/api/v1/workitems/{item_id}")
    out = _schema(document, _ref_name(op["responses"]["200"]["content"]["application/json"]["schema"]))
    documented = set(out["properties"])
    assert documented >= (API_MD_CREATE_FIELDS | API_MD_ITEM_EXTRA)
    sent = api(svc).post("/api/v1/workitems", create_body(queue), format="json").json()
    assert set(sent) == documented


def test_queue_representation_has_every_api_md_field(document, api, admin, queue):
    op = _operation(document, "get", "/api/v1/queues/{name}")
    out = _schema(document, _ref_name(op["responses"]["200"]["content"]["application/json"]["schema"]))
    assert set(out["properties"]) >= API_MD_QUEUE_FIELDS
    sent = api(admin).get(f"/api/v1/queues/{queue.name}").json()
    assert set(sent) == set(out["properties"])


def test_each_action_is_its_own_operation_with_its_body(document):
    """POST /workitems/{id}/{action} is documented as one operation per action (the route serves
    them all), each with the body that action takes and the answers a command gives."""
    for action in ("claim", "release", "start", "complete", "fail", "suspend", "resume", "delegate", "assign"):
        op = _operation(document, "post", f"/api/v1/workitems/{{item_id}}/{action}")
        assert {"409", "412", "403", "404"} <= set(op["responses"]), action
        assert not [p for p in op.get("parameters", []) if p["name"] == "action"]
    assert "/api/v1/workitems/{item_id}/{action}" not in document["paths"]
    delegate = _operation(document, "post", "/api/v1/workitems/{item_id}/delegate")["requestBody"]
    assert delegate["required"] is True
    assert delegate["content"]["application/json"]["schema"]["$ref"].endswith("/UserInRequest")
    claim = _operation(document, "post", "/api/v1/workitems/{item_id}/claim")["requestBody"]
    assert claim["content"]["application/json"]["schema"] == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/api/v1/workitems", {"201", "400", "403", "404"}),
        ("post", "/api/v1/workitems/bulk", {"201", "400"}),
        ("get", "/api/v1/workitems", {"200", "400"}),
        ("get", "/api/v1/workitems/{item_id}", {"200", "404"}),
        ("post", "/api/v1/workitems/claim-next", {"200", "204"}),
        ("get", "/api/v1/workitems/{item_id}/history", {"200", "404"}),
    ],
)
def test_api_md_statuses_are_documented(document, method, path, statuses):
    op = _operation(document, method, path)
    assert statuses <= set(op["responses"])
    if path != "/api/v1/auth/token":
        assert {"401", "429"} <= set(op["responses"])


def test_every_operation_documents_401_and_429_and_its_errors_as_problems(document):
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "patch", "put", "delete"):
                continue
            assert "429" in op["responses"], (method, path)
            if not path.startswith("/api/v1/auth/"):
                assert "401" in op["responses"], (method, path)
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    schemas = [c["schema"] for c in response.get("content", {}).values()]
                    assert schemas and all(_ref_name(s) == "ProblemOut" for s in schemas), (method, path, status)


def test_error_responses_are_documented_as_application_problem_json(document):
    op = _operation(document, "get", "/api/v1/workitems/{item_id}")
    assert "application/problem+json" in op["responses"]["404"]["content"]


def test_openapi_json_is_json_without_asking(db):
    resp = Client().get("/openapi.json")
    # application/vnd.oai.openapi+json (the OpenAPI media type) or plain application/json
    assert resp["Content-Type"].split(";")[0].endswith("json"), resp["Content-Type"]
    assert json.loads(resp.content)["openapi"].startswith("3.")


def test_openapi_json_is_public_and_json_when_asked(db):
    resp = Client().get("/openapi.json", HTTP_ACCEPT="application/json")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("application/json")
    doc = json.loads(resp.content)
    assert doc["info"]["title"] == "Workstream API"
    assert {"jwtAuth", "ApiKeyAuth"} <= set(doc["components"]["securitySchemes"])


@pytest.mark.parametrize(
    ("path", "script"),
    [("/swagger/", "/static/drf_spectacular_sidecar/"), ("/redoc/", "/redoc/redoc.standalone.js")],
)
def test_docs_are_served_offline(db, path, script):
    resp = Client().get(path)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert script in html
    for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com", "fonts.googleapis.com"):
        assert cdn not in html


def test_redoc_bundle_is_the_sidecar_one_without_its_cdn_fetch(db):
    """/redoc/'s script is drf-spectacular-sidecar's ReDoc bundle less its one hard-coded CDN
    fetch (Redocly's logo), so the page asks nothing of another host."""
    resp = Client().get("/redoc/redoc.standalone.js")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("application/javascript")
    body = resp.content.decode()
    assert len(body) > 500_000  # the whole bundle, not a stub
    assert "cdn.redoc.ly" not in body
