"""What schemathesis found between the document and the server: a `null` body is not an
object, a bad body is a 400 before a wrong If-Match is a 412, and the bulk body refuses
unknown members as a single create does."""

from __future__ import annotations

import json

import pytest

from tests.api.helpers import assert_field_error, assert_problem


def _post(client, path, raw: str, **headers):
    return client.post(path, data=raw, content_type="application/json", **headers)


@pytest.mark.parametrize("raw", ["null", "[]", "3", '"x"', "true"])
def test_claim_next_and_actions_refuse_a_body_that_is_not_an_object(api, alice, make_item, raw):
    item = make_item()
    client = api(alice)
    assert_problem(_post(client, "/api/v1/workitems/claim-next", raw), 400, "validation-error")
    assert_problem(_post(client, f"/api/v1/workitems/{item.pk}/claim", raw), 400, "validation-error")
    item.refresh_from_db()
    assert item.state == "OFFERED" and item.version == 1


@pytest.mark.parametrize("if_match", ['"99"', '"1"', "garbage", '"١"'])
def test_a_bad_body_is_a_400_whatever_if_match_says(api, svc, make_item, if_match):
    item = make_item()
    resp = _post(
        api(svc),
        f"/api/v1/workitems/{item.pk}/cancel",
        json.dumps({"reason": ["not", "a", "string"]}),
        HTTP_IF_MATCH=if_match,
    )
    assert_field_error(assert_problem(resp, 400, "validation-error"), "reason")
    item.refresh_from_db()
    assert item.state == "OFFERED"


def test_a_good_body_with_a_stale_if_match_is_still_a_412(api, svc, make_item):
    item = make_item()
    resp = _post(api(svc), f"/api/v1/workitems/{item.pk}/cancel", json.dumps({"reason": "x"}), HTTP_IF_MATCH='"7"')
    assert_problem(resp, 412, "stale-version")


@pytest.mark.parametrize("extra", [{"itemz": []}, {"priority": 5}, {"items": [], "dry_run": True}])
def test_bulk_create_refuses_unknown_top_level_members(api, svc, queue, extra):
    body = {"items": [{"workflow_id": "w", "task_name": "t", "queue": queue.name}], **extra}
    if "items" in extra:
        body["items"] = extra["items"] or body["items"]
    resp = api(svc).post("/api/v1/workitems/bulk", body, format="json")
    problem = assert_problem(resp, 400, "validation-error")
    unknown = sorted(set(extra) - {"items"})
    for name in unknown:
        assert_field_error(problem, name, "unknown field")


@pytest.mark.django_db
def test_the_document_declares_the_limits_the_server_enforces(client):
    doc = client.get("/openapi.json").json()
    listing = {p["name"]: p for p in doc["paths"]["/api/v1/workitems"]["get"]["parameters"]}
    assert listing["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    for path in ("/api/v1/workitems", "/api/v1/workitems/bulk", "/api/v1/subscriptions"):
        header = {p["name"]: p for p in doc["paths"][path]["post"]["parameters"]}["Idempotency-Key"]
        assert header["in"] == "header" and header["schema"]["maxLength"] == 255 and header["schema"]["minLength"] == 1
    for path in ("/api/v1/users", "/api/v1/subscriptions"):
        sizes = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}
        assert sizes["page_size"]["schema"]["maximum"] == 500, path
