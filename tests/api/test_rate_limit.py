"""Per-client rate limits (a sliding window on Redis, api/throttling.py) → 429 problem with Retry-After."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from django.core.cache import cache

from api import throttling
from config import wsconfig
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
    api_config({"rateLimits": {"default": "1000/m", "tokenPerIp": "2/m"}})
    anon = api(None)
    statuses = [anon.post("/api/v1/auth/token", {}, format="json").status_code for _ in range(2)]
    assert statuses == [400, 400]
    assert_problem(anon.post("/api/v1/auth/token", {}, format="json"), 429, "rate-limited")


# --- the window -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rate, expected",
    [
        ("100/s", (100, 1000)),
        ("20/2s", (20, 2000)),
        ("5/15min", (5, 900_000)),
        ("1/hour", (1, 3_600_000)),
        ("3/2d", (3, 172_800_000)),
        ("0/m", (0, 60_000)),
    ],
)
def test_rates_are_requests_per_a_number_of_units(rate, expected):
    assert throttling.parse_rate(rate) == expected


@pytest.mark.parametrize(
    "rate", ["5/0s", "5/ms", "5", "x/m", "5/2", "-1/s", "5/s ", "5/01s", "5/1000000s", "", "5/2 s"]
)
def test_a_bad_rate_in_the_file_stops_start_up_naming_the_key(tmp_path, rate):
    path = tmp_path / "workstream.yaml"
    for key in ("default", "anonymousPerIp", "tokenPerIp", "tokenPerUsername"):
        path.write_text(yaml.safe_dump({"rateLimits": {key: rate}}))
        with pytest.raises(wsconfig.ConfigError, match=rf"rateLimits\.{key}"):
            wsconfig.load(path)
    path.write_text(yaml.safe_dump({"rateLimits": {"perRole": {"service": rate}}}))
    with pytest.raises(wsconfig.ConfigError, match=r"rateLimits\.perRole\.service"):
        wsconfig.load(path)


@pytest.mark.parametrize("proxies", [["10.0.0.300"], ["not-an-ip"], [5], "10.0.0.1", ["10.0.0.0/33"], ["::1/129"]])
def test_a_bad_trusted_proxy_stops_start_up_naming_the_key(tmp_path, proxies):
    path = tmp_path / "workstream.yaml"
    path.write_text(yaml.safe_dump({"rateLimits": {"trustedProxies": proxies}}))
    with pytest.raises(wsconfig.ConfigError, match=r"rateLimits\.trustedProxies"):
        wsconfig.load(path)


def test_trusted_proxies_take_addresses_and_networks(tmp_path):
    path = tmp_path / "workstream.yaml"
    path.write_text(yaml.safe_dump({"rateLimits": {"trustedProxies": ["10.0.0.1", "172.16.0.0/12", "fd00::/8"]}}))
    assert wsconfig.load(path).rateLimits.trustedProxies == ["10.0.0.1", "172.16.0.0/12", "fd00::/8"]


@pytest.mark.parametrize("source", ["defaults", "shipped file"])
def test_every_limit_has_a_default(source):
    limits = wsconfig.DEFAULTS["rateLimits"] if source == "defaults" else wsconfig.load().rateLimits.as_dict()
    for key in ("default", "anonymousPerIp", "tokenPerIp", "tokenPerUsername"):
        assert throttling.parse_rate(limits[key])[0] > 0, key
    assert limits["trustedProxies"] == []


def test_the_window_slides_a_refused_request_is_not_counted_and_retry_after_says_when(db):
    def hit():
        return throttling.hit("slide", "3/2s")

    assert [hit() for _ in range(3)] == [None, None, None]
    assert hit() in (1, 2)  # refused: the oldest leaves the window in up to 2 s
    time.sleep(1.0)
    assert hit() == 1  # refused again, and neither refusal took a place in the window
    time.sleep(1.1)
    # the three accepted ones aged out: three more fit, the fourth does not
    assert [hit() is None for _ in range(4)] == [True, True, True, False]


def test_a_zero_rate_refuses_everything(db):
    assert throttling.hit("zero", "0/m") == 60


def test_with_an_in_process_cache_the_limit_holds_across_threads(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t"}}
    with ThreadPoolExecutor(16) as pool:
        waits = list(pool.map(lambda _: throttling.hit("local", "10/min"), range(100)))
    assert waits.count(None) == 10 and all(0 < w <= 60 for w in waits if w is not None)


def test_an_unreachable_cache_lets_requests_through_and_says_so(settings, caplog):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    assert throttling.hit("down", "1/min") is None
    assert "rate limit down not checked" in caplog.text
