"""Authentication: JWT for people, hashed API keys for service clients, 401s, brute-force lockout."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from axes.utils import reset as axes_reset
from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from api.models import ServiceApiKey
from tests import factories
from tests.api.helpers import assert_field_error, assert_problem, create_body
from workitems.models import WorkItem

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/token/refresh"


def client() -> APIClient:
    return APIClient(raise_request_exception=False)


@pytest.fixture
def person(db):
    """A worker with a username of its own: django-axes counts failures per username and IP in the
    Redis cache that every test run on this machine shares, so shared names could be locked out."""
    name = f"person-{uuid.uuid4().hex[:10]}"
    user = factories.user(name, roles=["worker"])
    user.raw_password = "pw-" + name
    yield user
    axes_reset(ip="127.0.0.1", username=name)


# --- JWT ------------------------------------------------------------------------------------------


def test_token_for_username_and_password_then_use_it(person):
    resp = client().post(TOKEN, {"username": person.username, "password": person.raw_password}, format="json")
    assert resp.status_code == 200, resp.content
    tokens = resp.json()
    assert set(tokens) >= {"access", "refresh"}
    assert AccessToken(tokens["access"])["user_id"] == str(person.pk)
    c = client()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert c.get("/api/v1/workitems").status_code == 200


@pytest.mark.parametrize("which", ["wrong password", "unknown user"])
def test_token_with_wrong_credentials_is_401_problem(person, which):
    creds = {"username": person.username, "password": "not-the-password"}
    if which == "unknown user":
        creds = {"username": f"ghost-{uuid.uuid4().hex[:8]}", "password": "x"}
    resp = client().post(TOKEN, creds, format="json")
    body = assert_problem(resp, 401, "unauthorized")
    assert "access" not in body and "refresh" not in body
    axes_reset(ip="127.0.0.1", username=creds["username"])


def test_token_without_fields_is_400_naming_them(db):
    body = assert_problem(client().post(TOKEN, {}, format="json"), 400, "validation-error")
    assert_field_error(body, "username", "required")
    assert_field_error(body, "password", "required")


def test_token_for_an_inactive_user_is_401(person):
    person.is_active = False
    person.save()
    resp = client().post(TOKEN, {"username": person.username, "password": person.raw_password}, format="json")
    assert_problem(resp, 401, "unauthorized")


def test_refresh_gives_a_working_access_token(person):
    refresh = RefreshToken.for_user(person)
    resp = client().post(REFRESH, {"refresh": str(refresh)}, format="json")
    assert resp.status_code == 200, resp.content
    c = client()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {resp.json()['access']}")
    assert c.get("/api/v1/workitems").status_code == 200


@pytest.mark.parametrize("token", ["not-a-token", "access"])
def test_refresh_with_a_bad_token_is_401_problem(person, token):
    value = str(RefreshToken.for_user(person).access_token) if token == "access" else token
    resp = client().post(REFRESH, {"refresh": value}, format="json")
    assert_problem(resp, 401, "unauthorized", clear_detail=False)


def test_refresh_with_a_bad_token_has_a_clear_detail(person):
    assert_problem(client().post(REFRESH, {"refresh": "not-a-token"}, format="json"), 401, "unauthorized")


def test_no_credentials_is_401_with_www_authenticate_bearer(db):
    resp = client().get("/api/v1/workitems")
    assert_problem(resp, 401, "unauthorized")
    assert resp["WWW-Authenticate"].startswith("Bearer")


def _expired_access(user) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(minutes=1))
    return str(token)


@pytest.mark.parametrize("kind", ["garbage", "expired", "refresh-as-access", "wrong-signature"])
def test_bad_bearer_token_is_401_with_www_authenticate(person, kind):
    token = {
        "garbage": lambda: "abc.def.ghi",
        "expired": lambda: _expired_access(person),
        "refresh-as-access": lambda: str(RefreshToken.for_user(person)),
        "wrong-signature": lambda: str(AccessToken.for_user(person))[:-4] + "AAAA",
    }[kind]()
    c = client()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    resp = c.get("/api/v1/workitems")
    assert_problem(resp, 401, "unauthorized", clear_detail=False)
    assert resp["WWW-Authenticate"].startswith("Bearer")


def test_expired_bearer_token_has_a_clear_detail(person):
    c = client()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {_expired_access(person)}")
    assert_problem(c.get("/api/v1/workitems"), 401, "unauthorized")


def test_bearer_of_a_deactivated_user_is_401(person):
    access = str(RefreshToken.for_user(person).access_token)
    person.is_active = False
    person.save()
    c = client()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert_problem(c.get("/api/v1/workitems"), 401, "unauthorized", clear_detail=False)


# --- brute-force protection -----------------------------------------------------------------------


@pytest.fixture
def axes_only(api_config):
    """Token throttles well above axes' failure limit: these tests are about the lockout
    (the throttles' own tests are tests/api/test_throttle_token.py)."""
    api_config({"rateLimits": {"tokenPerIp": "1000/min", "tokenPerUsername": "1000/min", "anonymousPerIp": "1000/min"}})


def _attempt(person, password: str, remote_addr: str = "127.0.0.1"):
    c = APIClient(raise_request_exception=False, REMOTE_ADDR=remote_addr)
    return c.post(TOKEN, {"username": person.username, "password": password}, format="json")


def _fail(person, times: int, remote_addr: str = "127.0.0.1") -> list[int]:
    return [_attempt(person, "wrong", remote_addr).status_code for _ in range(times)]


def _fail_until_locked(person) -> list[int]:
    return _fail(person, settings.AXES_FAILURE_LIMIT)


def _locked_out(resp) -> bool:
    return resp.status_code == 429 and "too many failed logins" in resp.json()["detail"]


def test_repeated_wrong_passwords_lock_the_username_out(person, axes_only):
    statuses = _fail_until_locked(person)
    assert statuses[0] == 401
    assert all(s in (401, 403, 429) for s in statuses), statuses
    # Locked out: even the right password gets no tokens.
    resp = client().post(TOKEN, {"username": person.username, "password": person.raw_password}, format="json")
    assert resp.status_code in (401, 403, 429), resp.content
    assert b"access" not in resp.content
    # Another username from the same address is not locked out.
    other = factories.user(f"other-{uuid.uuid4().hex[:8]}", roles=["worker"])
    ok = client().post(TOKEN, {"username": other.username, "password": "pw-" + other.username}, format="json")
    assert ok.status_code == 200, ok.content


def test_locked_out_username_gets_a_429_or_403_problem(person, axes_only):
    _fail_until_locked(person)
    resp = client().post(TOKEN, {"username": person.username, "password": person.raw_password}, format="json")
    assert resp.status_code in (403, 429), resp.content
    kind = "rate-limited" if resp.status_code == 429 else "not-allowed"
    assert_problem(resp, resp.status_code, kind)
    if resp.status_code == 429:
        assert int(resp["Retry-After"]) > 0
    assert _locked_out(resp)


# A token is a login: django-axes must hear of it (AXES_RESET_ON_SUCCESS), or failures from before
# the success stay counted and one more failure locks the account out for the cool-off.


@pytest.mark.parametrize("before", [1, 5, "limit-1"])
def test_a_successful_login_clears_the_failures_before_it(person, axes_only, before):
    before = settings.AXES_FAILURE_LIMIT - 1 if before == "limit-1" else before
    assert _fail(person, before) == [401] * before
    assert _attempt(person, person.raw_password).status_code == 200
    # one more failure is one failure, not the one that reaches the limit
    resp = _attempt(person, "wrong")
    assert resp.status_code == 401 and not _locked_out(resp), resp.content
    assert _attempt(person, person.raw_password).status_code == 200
    # and the limit still counts from zero: it takes the full number of failures again
    assert _fail(person, settings.AXES_FAILURE_LIMIT - 1) == [401] * (settings.AXES_FAILURE_LIMIT - 1)
    assert _attempt(person, person.raw_password).status_code == 200


def test_after_a_success_the_full_limit_of_failures_still_locks(person, axes_only):
    _fail(person, settings.AXES_FAILURE_LIMIT - 1)
    assert _attempt(person, person.raw_password).status_code == 200
    _fail_until_locked(person)
    assert _locked_out(_attempt(person, person.raw_password))


def test_a_success_clears_only_its_own_address(person, axes_only):
    """Failures are counted per username and address: a login from one address does not give an
    attacker at another a fresh budget."""
    _fail(person, settings.AXES_FAILURE_LIMIT - 1, "198.51.100.7")
    assert _attempt(person, person.raw_password, "192.0.2.1").status_code == 200
    assert _locked_out(_attempt(person, "wrong", "198.51.100.7"))
    assert _attempt(person, person.raw_password, "192.0.2.1").status_code == 200
    axes_reset(ip="198.51.100.7", username=person.username)


def test_a_locked_out_login_does_not_clear_the_lockout(person, axes_only):
    _fail_until_locked(person)
    for _ in range(3):
        assert _locked_out(_attempt(person, person.raw_password))


# --- API keys -------------------------------------------------------------------------------------


@pytest.fixture
def api_key(db):
    """(user, key): a key made by `manage.py create_api_key NAME --role service`."""
    name = f"engine-{uuid.uuid4().hex[:8]}"
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", name, "--role", "service", stdout=out, stderr=err)
    key = out.getvalue().strip()
    return ServiceApiKey.objects.get(name=name).user, key


def test_create_api_key_prints_the_key_once_and_stores_only_its_hash(api_key):
    user, key = api_key
    assert "\n" not in key and "." in key
    stored = ServiceApiKey.objects.get(user=user)
    assert stored.prefix == key.split(".")[0]
    assert key not in stored.hashed_key and key.split(".")[1] not in stored.hashed_key
    assert stored.is_valid(key)
    assert user.groups.filter(name="workstream-services").exists()
    assert not user.has_usable_password()


def test_api_key_authenticates_the_service_client(api_key, queue):
    user, key = api_key
    c = client()
    c.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    resp = c.post("/api/v1/workitems", create_body(queue), format="json")
    assert resp.status_code == 201, resp.content[:300]
    assert WorkItem.objects.get(pk=resp.json()["id"]).created_by == user
    assert c.get("/api/v1/workitems").status_code == 200


@pytest.mark.parametrize("kind", ["unknown", "tampered", "revoked", "expired"])
def test_bad_api_key_is_401_with_www_authenticate(api_key, kind):
    from django.utils import timezone

    user, key = api_key
    if kind == "unknown":
        key = "AbCdEfGh.notarealsecretvaluenotarealsecret"
    elif kind == "tampered":
        key = key[:-3] + ("aaa" if not key.endswith("aaa") else "bbb")
    elif kind == "revoked":
        ServiceApiKey.objects.filter(user=user).update(revoked=True)
    else:
        ServiceApiKey.objects.filter(user=user).update(expiry_date=timezone.now() - timedelta(days=1))
    c = client()
    c.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    resp = c.get("/api/v1/workitems")
    assert_problem(resp, 401, "unauthorized")
    assert resp["WWW-Authenticate"]


def test_empty_api_key_is_401(db):
    c = client()
    c.credentials(HTTP_AUTHORIZATION="Api-Key ")
    resp = c.get("/api/v1/workitems")
    assert_problem(resp, 401, "unauthorized")
    assert resp["WWW-Authenticate"]


def test_unknown_authorization_scheme_is_401(db):
    c = client()
    c.credentials(HTTP_AUTHORIZATION="Basic YWxpY2U6cHc=")
    resp = c.get("/api/v1/workitems")
    assert_problem(resp, 401, "unauthorized")
    assert resp["WWW-Authenticate"].startswith("Bearer")


# The lockout counts the address the throttles count (AXES_CLIENT_IP_CALLABLE = api.throttling.client_ip).


def test_x_forwarded_for_does_not_escape_the_lockout(person, axes_only):
    for i in range(settings.AXES_FAILURE_LIMIT):
        c = APIClient(raise_request_exception=False, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
        c.post(TOKEN, {"username": person.username, "password": "wrong"}, format="json")
    assert _locked_out(_attempt(person, person.raw_password))


def test_behind_a_trusted_proxy_the_lockout_is_per_forwarded_client(person, api_config):
    api_config({"rateLimits": {"tokenPerUsername": "1000/min", "trustedProxies": ["10.0.0.0/8"]}})

    def via_proxy(client_addr: str, password: str):
        c = APIClient(raise_request_exception=False, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=client_addr)
        return c.post(TOKEN, {"username": person.username, "password": password}, format="json")

    for _ in range(settings.AXES_FAILURE_LIMIT):
        via_proxy("203.0.113.5", "wrong")
    assert AccessAttempt.objects.filter(username=person.username).values_list("ip_address", flat=True).get() == (
        "203.0.113.5"
    )
    assert _locked_out(via_proxy("203.0.113.5", person.raw_password))
    assert via_proxy("203.0.113.6", person.raw_password).status_code == 200  # another client of the proxy
    axes_reset(ip="203.0.113.5", username=person.username)
