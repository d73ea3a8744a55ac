"""Configuration toggles: off means off, with a clear problem naming the toggle, everywhere
the action comes in (REST, the service layer the bus and admin share); on, all works."""

from __future__ import annotations

import pytest

from tests.api.helpers import assert_problem
from workitems import services
from workitems.errors import FeatureDisabled
from workitems.models import State


def test_rest_api_off_answers_404_naming_the_toggle_on_every_api_route(api, svc, queue, api_config):
    client = api(svc)
    assert client.get("/api/v1/workitems").status_code == 200
    api_config({"features": {"restApi": False}})
    for method, path in [
        ("get", "/api/v1/workitems"),
        ("post", "/api/v1/workitems"),
        ("get", "/api/v1/queues"),
        ("post", "/api/v1/auth/token"),
        ("get", "/api/v1/features"),
        ("get", "/openapi.json"),
    ]:
        resp = getattr(client, method)(path, {}, format="json") if method == "post" else client.get(path)
        body = assert_problem(resp, 404, "feature-disabled", detail_contains="features.restApi")
        assert body["toggle"] == "features.restApi"
    # what operators need stays up
    assert client.get("/health/live").status_code == 200
    assert client.get("/admin/login/").status_code == 200


def test_escalation_off_refuses_escalate_through_the_api_and_the_services(api, sam, make_item, api_config):
    item = make_item()
    api_config({"features": {"escalation": False}})
    resp = api(sam).post(f"/api/v1/workitems/{item.pk}/escalate", {"reason": "late"}, format="json")
    body = assert_problem(resp, 403, "feature-disabled", detail_contains="features.escalation")
    assert body["toggle"] == "features.escalation"
    with pytest.raises(FeatureDisabled):
        services.work_item_escalate(item_id=item.pk, actor=None, reason="the SLA scan")  # the system too
    item.refresh_from_db()
    assert item.escalation_level == 0 and item.version == 1
    api_config({"features": {"escalation": True}})
    assert api(sam).post(f"/api/v1/workitems/{item.pk}/escalate", {}, format="json").status_code == 200


def test_pull_off_refuses_claim_and_claim_next(api, alice, make_item, api_config):
    item = make_item()
    api_config({"assignment": {"pull": False}})
    client = api(alice)
    for resp in (
        client.post(f"/api/v1/workitems/{item.pk}/claim", {}, format="json"),
        client.post("/api/v1/workitems/claim-next", {}, format="json"),
    ):
        body = assert_problem(resp, 403, "feature-disabled", detail_contains="assignment.pull")
        assert body["toggle"] == "assignment.pull"
    with pytest.raises(FeatureDisabled):
        services.work_item_claim_next(actor=alice)
    item.refresh_from_db()
    assert item.state == State.OFFERED and item.version == 1
    api_config({"assignment": {"pull": True}})
    assert client.post("/api/v1/workitems/claim-next", {}, format="json").json()["id"] == item.pk
