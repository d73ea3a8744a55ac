"""Unauthenticated API requests are limited per client address (issue 10, item 3).

DRF checks throttles after authentication and permissions, so a request with no or bad
credentials got its 401 before any throttle saw it: a flood of forged tokens was never slowed.
api/throttle_middleware.py counts them per address (`rateLimits.anonymousPerIp`): a request
without credentials before anything runs, one with credentials when they fail. Valid clients
behind the same address are not refused. The address is REMOTE_ADDR; X-Forwarded-For only
counts behind `rateLimits.trustedProxies` (api/throttling.py `client_ip`).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rest_framework.test import APIClient

from api.models import ServiceApiKey
from api.throttling import client_ip, throttle_ip
from tests.api.conftest import bearer
from tests.api.helpers import assert_problem

LIMIT = 3
PATH = "/api/v1/workitems"


def from_address(remote_addr: str = "127.0.0.1", **headers) -> APIClient:
    client = APIClient(raise_request_exception=False, REMOTE_ADDR=remote_addr)
    client.credentials(**headers)
    return client


@pytest.fixture
def anon_limit(api_config):
    return api_config({"rateLimits": {"anonymousPerIp": f"{LIMIT}/min"}})


def assert_throttled(resp) -> int:
    body = assert_problem(resp, 429, "rate-limited", detail_contains="unauthenticated requests from this address")
    wait = int(resp["Retry-After"])
    assert 0 < wait <= 60 and f"{wait} s" in body["detail"]
    return wait


BAD_CREDENTIALS = {
    "none": {},
    "garbage-jwt": {"HTTP_AUTHORIZATION": "Bearer abc.def.ghi"},
    "empty-bearer": {"HTTP_AUTHORIZATION": "Bearer "},
    "unknown-api-key": {"HTTP_AUTHORIZATION": "Api-Key AbCdEfGh.notarealsecretvaluenotarealsecret"},
    "empty-api-key": {"HTTP_AUTHORIZATION": "Api-Key "},
    "basic": {"HTTP_AUTHORIZATION": "Basic YWxpY2U6cHc="},
    "bogus-session": {"HTTP_COOKIE": "sessionid=not-a-session"},
}


@pytest.mark.parametrize("kind", BAD_CREDENTIALS)
def test_requests_that_do_not_authenticate_get_429_after_the_limit(db, anon_limit, kind):
    client = from_address(**BAD_CREDENTIALS[kind])
    statuses = [client.get(PATH).status_code for _ in range(LIMIT)]
    assert statuses == [401] * LIMIT
    for _ in range(3):
        assert_throttled(client.get(PATH))


def test_every_kind_of_failure_counts_against_one_budget(db, anon_limit):
    kinds = list(BAD_CREDENTIALS.values())
    statuses = [from_address(**kinds[i % len(kinds)]).get(PATH).status_code for i in range(LIMIT + 4)]
    assert statuses == [401] * LIMIT + [429] * 4


def test_a_valid_client_on_the_same_address_is_still_served(db, anon_limit, alice, svc):
    for _ in range(LIMIT + 1):
        from_address().get(PATH)
    assert_throttled(from_address().get(PATH))
    _, key = ServiceApiKey.objects.create_key(name="svc-key", user=svc)
    assert from_address(HTTP_AUTHORIZATION=bearer(alice)).get(PATH).status_code == 200
    assert from_address(HTTP_AUTHORIZATION=f"Api-Key {key}").get(PATH).status_code == 200
    assert_throttled(from_address().get(PATH))


def test_authenticated_requests_do_not_spend_the_budget(db, anon_limit, alice):
    client = from_address(HTTP_AUTHORIZATION=bearer(alice))
    assert [client.get(PATH).status_code for _ in range(LIMIT * 3)] == [200] * (LIMIT * 3)
    assert [from_address().get(PATH).status_code for _ in range(LIMIT)] == [401] * LIMIT


def test_other_addresses_have_budgets_of_their_own(db, anon_limit):
    for _ in range(LIMIT):
        from_address("10.0.0.1").get(PATH)
    assert_throttled(from_address("10.0.0.1").get(PATH))
    assert from_address("10.0.0.2").get(PATH).status_code == 401
    assert from_address("2001:db8::1").get(PATH).status_code == 401


def test_an_ipv6_client_is_counted_per_64(db, anon_limit):
    for i in range(LIMIT):
        from_address(f"2001:db8:1:2::{i + 1:x}").get(PATH)
    # another host of the same /64 is the same client; the next /64 is another
    assert_throttled(from_address("2001:db8:1:2:ffff:ffff:ffff:fffe").get(PATH))
    assert from_address("2001:db8:1:3::1").get(PATH).status_code == 401


def test_the_token_endpoints_anonymous_calls_count_too(db, api_config):
    api_config({"rateLimits": {"anonymousPerIp": f"{LIMIT}/min", "tokenPerIp": "100/min"}})
    client = from_address()
    assert [client.post("/api/v1/auth/token", {}, format="json").status_code for _ in range(LIMIT)] == [400] * LIMIT
    assert_throttled(client.post("/api/v1/auth/token/refresh", {"refresh": "x"}, format="json"))
    assert_throttled(client.get(PATH))


def test_paths_outside_the_api_are_not_counted(db, anon_limit):
    client = from_address()
    assert [client.get("/health/live").status_code for _ in range(LIMIT * 3)] == [200] * (LIMIT * 3)
    assert [client.get(PATH).status_code for _ in range(LIMIT)] == [401] * LIMIT


def test_x_forwarded_for_is_not_believed_by_default(db, anon_limit):
    statuses = [from_address(HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").get(PATH).status_code for i in range(LIMIT + 2)]
    assert statuses == [401] * LIMIT + [429] * 2


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(db, api_config):
    api_config({"rateLimits": {"anonymousPerIp": f"{LIMIT}/min", "trustedProxies": ["10.9.0.0/16"]}})

    def via_proxy(xff: str):
        return from_address("10.9.1.1", HTTP_X_FORWARDED_FOR=xff).get(PATH)

    # the client's own (forgeable) entries on the left are ignored: the proxy appended the real one
    for i in range(LIMIT):
        assert via_proxy(f"192.0.2.{i}, 203.0.113.7").status_code == 401
    assert_throttled(via_proxy("203.0.113.7"))
    assert via_proxy("203.0.113.8").status_code == 401
    # a peer that is not a trusted proxy is counted itself, whatever it forwards
    assert from_address("10.8.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").get(PATH).status_code == 401


# --- the address itself -----------------------------------------------------------------------


def _request(remote: str | None, xff: str | None = None):
    meta = {} if remote is None else {"REMOTE_ADDR": remote}
    if xff is not None:
        meta["HTTP_X_FORWARDED_FOR"] = xff
    return SimpleNamespace(META=meta)


@pytest.mark.parametrize(
    "proxies, remote, xff, expected",
    [
        ([], "203.0.113.5", None, "203.0.113.5"),
        ([], "203.0.113.5", "1.2.3.4", "203.0.113.5"),  # never believed without trusted proxies
        ([], "::ffff:203.0.113.5", None, "203.0.113.5"),  # an IPv4-mapped address is the IPv4 one
        ([], "2001:DB8::0:1", None, "2001:db8::1"),
        ([], "fe80::1%eth0", None, "fe80::1"),  # the zone is the server's interface
        ([], None, "1.2.3.4", None),  # no address at all: none (axes stores it as an address)
        ([], "", None, None),
        ([], "testserver", None, None),
        ([], "10.0.0.300", None, None),
        (["10.0.0.0/8"], "10.0.0.1", "1.2.3.4", "1.2.3.4"),
        (["10.0.0.0/8"], "10.0.0.1", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the rightmost untrusted hop
        (["10.0.0.0/8"], "10.0.0.1", "1.2.3.4, 10.0.0.2", "1.2.3.4"),  # past a chain of our proxies
        (["10.0.0.0/8"], "10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),  # all ours: the farthest
        (["10.0.0.0/8"], "10.0.0.1", "", "10.0.0.1"),
        (["10.0.0.0/8"], "10.0.0.1", "not-an-ip", "10.0.0.1"),  # garbage: the last proxy
        (["10.0.0.0/8"], "10.0.0.1", "1.2.3.4, bogus", "10.0.0.1"),
        (["10.0.0.0/8"], "192.0.2.1", "1.2.3.4", "192.0.2.1"),  # the peer is not our proxy
        (["2001:db8::/32"], "2001:db8::9", "2001:db9::1", "2001:db9::1"),
    ],
)
def test_client_ip(api_config, proxies, remote, xff, expected):
    api_config({"rateLimits": {"trustedProxies": proxies}})
    assert client_ip(_request(remote, xff)) == expected


def test_throttle_ip_groups_ipv6_by_64(api_config):
    api_config({"rateLimits": {}})
    assert throttle_ip(_request("203.0.113.5")) == "203.0.113.5"
    assert throttle_ip(_request("2001:db8:1:2:3:4:5:6")) == "2001:db8:1:2::/64"
    assert throttle_ip(_request(None)) == throttle_ip(_request("garbage")) == "unknown"
