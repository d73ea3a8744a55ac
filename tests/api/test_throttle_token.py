"""The token endpoint is throttled per address and per username (issue 10, item 3).

django-axes locks a username/address pair out after repeated failures, which does nothing
against a password spray (one password tried on many usernames from one address) or against one
username tried from many addresses. `POST /api/v1/auth/token` is now limited per address
(`rateLimits.tokenPerIp`) and per username across addresses (`tokenPerUsername`), before the
password is checked (api/throttling.py `TokenRateThrottle`).
"""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from tests import factories
from tests.api.helpers import assert_problem

TOKEN = "/api/v1/auth/token"


def post(body, remote_addr: str = "127.0.0.1", **extra):
    client = APIClient(raise_request_exception=False, REMOTE_ADDR=remote_addr)
    return client.post(TOKEN, body, format="json", **extra)


SPRAYED = "Winter2026!"  # the one guess a spray tries on every account


def login(username: str, password: str | None = None, remote_addr: str = "127.0.0.1", **extra):
    return post({"username": username, "password": password or SPRAYED}, remote_addr, **extra)


def assert_throttled(resp, window: int = 60) -> None:
    assert_problem(resp, 429, "rate-limited")
    assert 0 < int(resp["Retry-After"]) <= window
    assert b"access" not in resp.content


@pytest.fixture
def limits(api_config):
    def apply(**rate_limits):
        return api_config({"rateLimits": {"anonymousPerIp": "1000/min", **rate_limits}})

    return apply


def test_a_password_spray_of_60_usernames_from_one_address_is_slowed(db, limits):
    limits(tokenPerIp="10/min", tokenPerUsername="10/min")
    users = [factories.user(f"spray-{uuid.uuid4().hex[:8]}") for _ in range(30)]
    names = [u.username for u in users] + [f"ghost-{i}" for i in range(30)]  # real and unknown accounts
    responses = [login(name) for name in names]
    assert [r.status_code for r in responses[:10]] == [401] * 10
    for r in responses[10:]:
        assert_throttled(r)
    # the right password of an account no one tried yet is refused too: the address is spent
    assert_throttled(login(users[-1].username, "pw-" + users[-1].username))
    # another address is not
    assert login(users[-1].username, "pw-" + users[-1].username, "10.1.1.1").status_code == 200


def test_one_username_from_many_addresses_is_slowed(db, limits):
    limits(tokenPerIp="100/min", tokenPerUsername="5/min")
    victim = factories.user(f"victim-{uuid.uuid4().hex[:8]}")
    statuses = [login(victim.username, "guess", f"198.51.100.{i}").status_code for i in range(5)]
    assert statuses == [401] * 5
    for i in range(5, 12):
        assert_throttled(login(victim.username, "guess", f"198.51.100.{i}"))
    # the account's own password from a fresh address waits too (checked before the password)
    assert_throttled(login(victim.username, "pw-" + victim.username, "203.0.113.1"))
    # other usernames are not affected
    other = factories.user(f"other-{uuid.uuid4().hex[:8]}")
    assert login(other.username, "pw-" + other.username, "198.51.100.1").status_code == 200


@pytest.mark.parametrize(
    "spell",
    [str.upper, lambda n: f"  {n}\t", str.title, lambda n: "\uff56" + n[1:]],
    ids=["upper", "spaces", "title", "fullwidth"],
)
def test_spellings_of_one_username_share_its_window(db, limits, spell):
    """Case, surrounding space and compatibility forms (NFKC: fullwidth "ｖ" is "v") are one
    window: a directory may take them for one account."""
    limits(tokenPerIp="100/min", tokenPerUsername="3/min")
    name = f"v{uuid.uuid4().hex[:8]}"
    for i in range(3):
        assert login(name, remote_addr=f"198.51.100.{i}").status_code == 401
    assert_throttled(login(spell(name), remote_addr="198.51.100.9"))
    assert login(f"w{name}", remote_addr="198.51.100.9").status_code == 401


def test_a_request_refused_by_its_address_does_not_spend_the_usernames_window(db, limits):
    limits(tokenPerIp="2/min", tokenPerUsername="3/min")
    victim = factories.user(f"victim-{uuid.uuid4().hex[:8]}")
    for _ in range(10):
        login(victim.username, "guess", "192.0.2.66")  # 2 counted, 8 refused by the address
    assert login(victim.username, "guess", "198.51.100.1").status_code == 401  # the username's 3rd
    assert login(victim.username, "pw-" + victim.username, "198.51.100.2").status_code == 429
    limits(tokenPerIp="2/min", tokenPerUsername="4/min")
    assert login(victim.username, "pw-" + victim.username, "198.51.100.2").status_code == 200


@pytest.mark.parametrize(
    "body, content_type",
    [
        ([], None),
        ({"username": 5, "password": "x"}, None),
        ({"username": ["a"], "password": "x"}, None),
        ({"username": {"a": 1}, "password": "x"}, None),
        ({"username": "", "password": "x"}, None),
        ('{"username": "\\ud800x", "password": "x"}', "application/json"),
        ('{"username": "a\\u0000b", "password": "x"}', "application/json"),
        ({"username": "\u00e9" * 5000, "password": "x"}, None),
        ({"password": "x"}, None),
        ('{"username": "a", ', "application/json"),
        ("username=a&password=b", "application/x-www-form-urlencoded"),
    ],
    ids=["list", "number", "array", "object", "empty", "surrogate", "nul", "long", "missing", "broken-json", "form"],
)
def test_odd_bodies_are_4xx_and_count_against_the_address(db, limits, body, content_type):
    limits(tokenPerIp="2/min")
    client = APIClient(raise_request_exception=False)

    def send():
        if content_type:
            return client.generic("POST", TOKEN, body, content_type=content_type)
        return client.post(TOKEN, body, format="json")

    statuses = [send().status_code for _ in range(2)]
    assert all(400 <= s < 500 and s != 429 for s in statuses), statuses
    assert_throttled(send())


def test_the_spray_is_counted_by_the_real_address_not_x_forwarded_for(db, limits):
    limits(tokenPerIp="3/min")
    statuses = [
        login(f"u{i}", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code for i in range(5)
    ]  # rotating a forgeable header gets nothing
    assert statuses == [401, 401, 401, 429, 429]


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_window(db, limits):
    limits(tokenPerIp="2/min", trustedProxies=["10.0.0.0/8"])
    for _ in range(2):
        login(f"x{uuid.uuid4().hex[:6]}", remote_addr="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.1")
    assert_throttled(login("y", remote_addr="10.0.0.6", HTTP_X_FORWARDED_FOR="203.0.113.1"))
    assert login("y", remote_addr="10.0.0.6", HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 401


def test_the_window_rates_are_the_configured_ones(db, limits):
    limits(tokenPerIp="4/min", tokenPerUsername="100/min")
    statuses = [login(f"n{i}").status_code for i in range(6)]
    assert statuses == [401] * 4 + [429] * 2


@pytest.mark.parametrize("remote_addr", ["", "not-an-address", "10.0.0.300", "fe80::1%"])
def test_a_request_without_a_usable_address_is_answered_and_throttled(db, limits, remote_addr):
    """The server gave no (usable) client address: the login works, failures are still counted by
    axes (under no address), and such requests share one window."""
    limits(tokenPerIp="3/min")
    user = factories.user(f"noaddr-{uuid.uuid4().hex[:8]}")
    assert login(user.username, "pw-" + user.username, remote_addr).status_code == 200
    assert login(user.username, "guess", remote_addr).status_code == 401
    assert login(user.username, "guess", "").status_code == 401
    assert_throttled(login(user.username, "pw-" + user.username, remote_addr))


@pytest.mark.parametrize("remote_addr", ["fe80::1%eth0", "::ffff:192.0.2.1", "2001:DB8::1"])
def test_odd_spellings_of_an_address_are_answered(db, limits, remote_addr):
    limits(tokenPerIp="3/min")
    user = factories.user(f"odd-{uuid.uuid4().hex[:8]}")
    assert login(user.username, "guess", remote_addr).status_code == 401
    assert login(user.username, "pw-" + user.username, remote_addr).status_code == 200
