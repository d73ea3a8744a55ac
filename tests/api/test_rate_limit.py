"""Per-client rate limits (DRF throttle on the shared cache) → 429 problem with Retry-After."""

from __future__ import annotations

from django.core.cache import cache

from tests.api.helpers import assert_problem


def _clear_throttle_keys(*users):
    # Each test has a cache prefix of its own (conftest); clear the keys anyway, as the brief of
    # the throttle says a client starts with an empty history.
    cache.delete_many([f"throttle:user:{u.pk}" for u in users] + ["throttle:ip:127.0.0.1"])


def test_sixth_request_in_a_minute_is_429_with_retry_after(api, api_config, alice):
    api_config({"rateLimits": {"default": "5/m"}})
    _clear_throttle_keys(alice)
    client = api(alice)
    for i in range(5):
        resp = client.get("/api/v1/workitems")
        assert resp.status_code == 200, (i, resp.content)
    resp = client.get("/api/v1/workitems")
    body = assert_problem(resp, 429, "rate-limited")
    retry_after = int(resp["Retry-After"])
    assert 0 < retry_after <= 60
    assert body["detail"] == f"Request was throttled. Expected available in {retry_after} seconds."


def test_limits_are_per_client(api, api_config, alice, carol):
    api_config({"rateLimits": {"default": "2/m"}})
    _clear_throttle_keys(alice, carol)
    a, c = api(alice), api(carol)
    assert [a.get("/api/v1/queues").status_code for _ in range(3)] == [200, 200, 429]
    assert c.get("/api/v1/queues").status_code == 200


def test_writes_count_too_and_a_throttled_write_changes_nothing(api, api_config, alice, make_item):
    api_config({"rateLimits": {"default": "1/m"}})
    items = [make_item(), make_item()]
    _clear_throttle_keys(alice)
    client = api(alice)
    assert client.post(f"/api/v1/workitems/{items[0].pk}/claim").status_code == 200
    resp = client.post(f"/api/v1/workitems/{items[1].pk}/claim")
    assert_problem(resp, 429, "rate-limited")
    items[1].refresh_from_db()
    assert items[1].state == "OFFERED"


def test_per_role_override(api, api_config, alice, sam):
    api_config({"rateLimits": {"default": "2/m", "perRole": {"supervisor": "4/m"}}})
    _clear_throttle_keys(alice, sam)
    assert [api(alice).get("/api/v1/features").status_code for _ in range(3)] == [200, 200, 429]
    s = api(sam)
    assert [s.get("/api/v1/features").status_code for _ in range(5)] == [200, 200, 200, 200, 429]


def test_anonymous_callers_of_the_token_endpoint_are_limited_by_address(api, api_config, db):
    api_config({"rateLimits": {"default": "2/m"}})
    cache.delete("throttle:ip:127.0.0.1")
    anon = api(None)
    statuses = [anon.post("/api/v1/auth/token", {}, format="json").status_code for _ in range(2)]
    assert statuses == [400, 400]
    assert_problem(anon.post("/api/v1/auth/token", {}, format="json"), 429, "rate-limited")
