"""OIDC access tokens (api/oidc.py) against a real JWKS endpoint: an http.server on loopback
serving the public halves of RSA and EC keys this test generates (cryptography), tokens
signed with PyJWT (tests/oidc_provider.py). Verification, key rotation and the refetch limits, claim mapping onto
the local user and its role groups; simplejwt and API keys keep working beside it."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from api.models import ServiceApiKey
from audit.models import AuditRecord
from directory.roles import roles_of
from tests import factories
from tests.api.helpers import assert_problem
from tests.oidc_provider import AUDIENCE, ISSUER, Jwks, Key

FEATURES = "/api/v1/features"


@pytest.fixture
def jwks():
    server = Jwks()
    yield server
    server.close()


@pytest.fixture
def oidc(ws_config, jwks):
    """OIDC on, against the loopback JWKS; `oidc(**overrides)` changes the section."""

    def apply(**overrides):
        section = {
            "enabled": True,
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwksUrl": jwks.url,
            "jwksMinRefetchSeconds": 0.5,
            "jwksTimeoutSeconds": 2,
            **overrides,
        }
        return ws_config({"oidc": section})

    apply()
    return apply


def call(token: str, path: str = FEATURES, method: str = "get", **kwargs):
    client = APIClient(raise_request_exception=False)
    return getattr(client, method)(path, HTTP_AUTHORIZATION=f"Bearer {token}", **kwargs)


def name() -> str:
    return f"oidc-{uuid.uuid4().hex[:10]}"


# --- verification -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["RSA", "EC"])
def test_a_token_of_the_provider_authenticates_and_creates_the_user(db, oidc, jwks, kind):
    key = Key(kind)
    jwks.publish(key)
    username = name()
    resp = call(key.token(preferred_username=username, roles=["worker"], email=f"{username}@example.com"))
    assert resp.status_code == 200, resp.content
    user = get_user_model().objects.get(username=username)
    assert user.email == f"{username}@example.com" and not user.has_usable_password()
    assert roles_of(user) == {"worker"}
    created = AuditRecord.objects.get(stream=f"user:{user.pk}", action="user.created")
    assert created.data["source"] == "oidc" and created.data["groups"] == ["workstream-workers"]


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"iss": "https://idp.test/realms/acme"[:-1] + "x"}, None),  # another issuer: simplejwt's refusal
        ({"aud": "some-other-api"}, "audience"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"aud": None}, "'aud'"),
        ({"exp": None}, "'exp'"),
        ({"preferred_username": ""}, "preferred_username"),
        ({"preferred_username": ["a", "b"]}, "preferred_username"),
    ],
    ids=["wrong-issuer", "wrong-audience", "expired", "no-aud", "no-exp", "empty-username", "list-username"],
)
def test_bad_tokens_are_401_problems(db, oidc, jwks, claims, detail):
    key = Key()
    jwks.publish(key)
    resp = call(key.token(**{"preferred_username": name(), **claims}))
    body = assert_problem(resp, 401, "unauthorized")
    if detail:
        assert detail in body["detail"], body
    assert resp["WWW-Authenticate"].startswith("Bearer")
    assert not get_user_model().objects.filter(username__startswith="oidc-").exists()


def test_a_key_the_provider_does_not_publish_is_refused(db, oidc, jwks):
    published, stranger = Key(), Key()
    jwks.publish(published)
    forged = stranger.token(preferred_username=name(), headers={"kid": published.kid})  # its kid, another key
    assert "Signature verification failed" in assert_problem(call(forged), 401, "unauthorized")["detail"]
    unknown = assert_problem(call(stranger.token(preferred_username=name())), 401, "unauthorized")
    assert stranger.kid in unknown["detail"] and "unknown key" in unknown["detail"]


def test_alg_none_and_hmac_with_the_public_key_are_refused(db, oidc, jwks):
    key = Key()
    jwks.publish(key)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, "preferred_username": name()}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": key.kid})
    assert "'none'" in assert_problem(call(unsigned), 401, "unauthorized")["detail"]
    # The classic confusion: HS256 with the provider's public key (which anyone can fetch) as the secret.
    # PyJWT refuses to sign with a PEM, so the token is made by hand.
    import base64
    import hashlib
    import hmac

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    signing_input = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
        + b"."
        + b64(json.dumps(claims).encode())
    )
    confused = signing_input + b"." + b64(hmac.new(key.public_pem(), signing_input, hashlib.sha256).digest())
    assert "'HS256'" in assert_problem(call(confused.decode()), 401, "unauthorized")["detail"]
    # An algorithm the configuration does not list, although the key could do it.
    key.alg = "RS512"
    assert "RS512" in assert_problem(call(key.token(preferred_username=name())), 401, "unauthorized")["detail"]


def test_a_token_without_kid_is_refused(db, oidc, jwks):
    key = Key()
    jwks.publish(key)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, "preferred_username": name()}
    token = jwt.encode(claims, key.private, algorithm="RS256")
    assert "kid" in assert_problem(call(token), 401, "unauthorized")["detail"]


# --- keys: cache, rotation, refetch limits ------------------------------------------------------


def test_key_rotation_fetches_the_set_again_on_an_unknown_kid(db, oidc, jwks):
    old, new = Key(), Key("EC")
    jwks.publish(old)
    username = name()
    assert call(old.token(preferred_username=username)).status_code == 200
    assert call(old.token(preferred_username=username)).status_code == 200
    assert jwks.fetches == 1  # cached

    jwks.publish(old, new)  # the provider rotates: the new key is announced, then used
    time.sleep(0.6)  # past jwksMinRefetchSeconds
    assert call(new.token(preferred_username=username)).status_code == 200
    assert jwks.fetches == 2
    assert call(old.token(preferred_username=username)).status_code == 200  # both are in the set now
    assert jwks.fetches == 2

    jwks.publish(new)  # the old key is withdrawn; the cache still holds it until it expires
    oidc(jwksCacheSeconds=0.5, jwksMinRefetchSeconds=0.5)
    assert call(new.token(preferred_username=username)).status_code == 200
    fetched = jwks.fetches
    time.sleep(0.6)  # past jwksCacheSeconds: the set is read again and the old key is gone
    assert_problem(call(old.token(preferred_username=username)), 401, "unauthorized")
    assert jwks.fetches == fetched + 1


def test_unknown_kids_fetch_the_set_at_most_once_per_interval(db, oidc, jwks):
    key = Key()
    jwks.publish(key)
    oidc(jwksMinRefetchSeconds=30)
    assert call(key.token(preferred_username=name())).status_code == 200
    assert jwks.fetches == 1
    for _ in range(5):  # a flood of made-up key ids
        bogus = key.token(preferred_username=name(), headers={"kid": uuid.uuid4().hex})
        assert_problem(call(bogus), 401, "unauthorized")
    assert jwks.fetches == 1, "an unknown kid within jwksMinRefetchSeconds must not fetch the set again"


def test_an_unreachable_key_set_is_a_401_naming_it_and_is_not_hammered(db, oidc, jwks):
    key = Key()
    jwks.publish(key)
    jwks.down = True
    oidc(jwksMinRefetchSeconds=30)
    for _ in range(3):
        body = assert_problem(call(key.token(preferred_username=name())), 401, "unauthorized")
        assert "could not be fetched" in body["detail"]
    assert jwks.fetches == 1, "after a failed fetch the provider is not asked again within jwksMinRefetchSeconds"


def test_a_key_set_that_is_not_json_is_a_401_not_a_500(db, oidc, jwks):
    key = Key()
    jwks.publish(key)
    jwks.garbage = True
    body = assert_problem(call(key.token(preferred_username=name())), 401, "unauthorized")
    assert "could not be fetched" in body["detail"]


def test_an_outage_after_a_fetch_keeps_the_last_key_set(db, oidc, jwks):
    key, rotated = Key(), Key("EC")
    jwks.publish(key)
    # The retry window is wide enough for the calls below to fall in it on a loaded machine
    # (at 0.5 s, two calls 2 s apart saw a third fetch).
    oidc(jwksCacheSeconds=0.5, jwksMinRefetchSeconds=5)
    username = name()
    assert call(key.token(preferred_username=username)).status_code == 200
    jwks.down = True
    time.sleep(0.6)  # the cache has expired: the fetch fails, the last key set serves
    assert call(key.token(preferred_username=username)).status_code == 200
    assert jwks.fetches == 2
    assert call(key.token(preferred_username=username)).status_code == 200
    assert_problem(call(rotated.token(preferred_username=username)), 401, "unauthorized")  # not asked again yet
    assert jwks.fetches == 2
    jwks.down = False
    jwks.publish(key, rotated)
    time.sleep(5.1)  # past the retry window after the failure
    assert call(rotated.token(preferred_username=username)).status_code == 200
    assert jwks.fetches == 3


# --- claims → user and roles ----------------------------------------------------------------------


def test_roles_follow_the_token_through_the_mapping_and_nested_claims(db, oidc, jwks, team_a):
    key = Key()
    jwks.publish(key)
    oidc(rolesClaim="realm_access.roles", roleMapping={"acme-approvers": "supervisor"}, groupsClaim="groups")
    username = name()
    token = key.token(
        preferred_username=username,
        realm_access={"roles": ["acme-approvers", "workstream-services", "offline_access"]},
        groups=["team-a", "no-such-group"],
    )
    assert call(token).status_code == 200
    user = get_user_model().objects.get(username=username)
    assert roles_of(user) == {"supervisor", "service"}
    assert set(user.groups.values_list("name", flat=True)) == {
        "workstream-supervisors",
        "workstream-services",
        "team-a",
    }  # groups that do not exist are not created from a token

    # A service client may create an item; the next token drops the role, and with it the right.
    queue = factories.queue(f"q-{uuid.uuid4().hex[:8]}", groups=[team_a])
    item = factories.item_body(queue)
    assert call(token, "/api/v1/workitems", "post", data=item, format="json").status_code == 201
    demoted = key.token(preferred_username=username, realm_access={"roles": ["workstream-workers"]}, groups=[])
    assert call(demoted, "/api/v1/workitems", "post", data=factories.item_body(queue), format="json").status_code == 403
    user.refresh_from_db()
    assert set(user.groups.values_list("name", flat=True)) == {"workstream-workers"}
    changed = AuditRecord.objects.filter(stream=f"user:{user.pk}", action="user.groups_changed").last()
    removed = ["team-a", "workstream-services", "workstream-supervisors"]
    assert changed.data == {"added": ["workstream-workers"], "removed": removed, "source": "oidc"}


def test_without_groups_claim_local_teams_stay_and_an_unchanged_token_writes_nothing(db, oidc, jwks, alice):
    key = Key()
    jwks.publish(key)
    token = key.token(preferred_username="alice", roles=["worker", "supervisor"])
    assert call(token).status_code == 200
    alice.refresh_from_db()
    groups = {"team-a", "workstream-workers", "workstream-supervisors"}
    assert set(alice.groups.values_list("name", flat=True)) == groups
    records = AuditRecord.objects.filter(stream=f"user:{alice.pk}").count()
    assert call(token).status_code == 200
    assert AuditRecord.objects.filter(stream=f"user:{alice.pk}").count() == records


def test_inactive_and_unknown_users(db, oidc, jwks, alice):
    key = Key()
    jwks.publish(key)
    alice.is_active = False
    alice.save()
    assert "inactive" in assert_problem(call(key.token(preferred_username="alice")), 401, "unauthorized")["detail"]
    oidc(createUsers=False)
    stranger = name()
    assert "createUsers" in assert_problem(call(key.token(preferred_username=stranger)), 401, "unauthorized")["detail"]
    assert not get_user_model().objects.filter(username=stranger).exists()


# --- the other schemes keep working; configuration --------------------------------------------


def test_simplejwt_and_api_keys_work_beside_oidc(db, oidc, jwks, svc, alice):
    jwks.publish(Key())
    access = str(RefreshToken.for_user(alice).access_token)
    assert call(access).status_code == 200
    _, api_key = ServiceApiKey.objects.create_key(name="svc-key", user=svc)
    resp = APIClient().get(FEATURES, HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    assert resp.status_code == 200
    assert jwks.fetches == 0  # neither went near the identity provider
    assert_problem(call("not-a-jwt"), 401, "unauthorized")


def test_oidc_off_leaves_provider_tokens_to_simplejwt(db, ws_config, jwks):
    key = Key()
    jwks.publish(key)
    ws_config({"oidc": {"enabled": False, "issuer": ISSUER, "audience": AUDIENCE, "jwksUrl": jwks.url}})
    assert_problem(call(key.token(preferred_username=name())), 401, "unauthorized")
    assert jwks.fetches == 0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"enabled": True, "audience": "a", "jwksUrl": "https://idp/certs"}, "'issuer' is a required property"),
        (
            {"enabled": True, "issuer": "i", "audience": "a", "jwksUrl": "http://idp.example/certs"},
            "is not a 'jwks-url'",
        ),
        ({"audience": []}, "oidc.audience"),
        ({"algorithms": ["HS256"]}, "oidc.algorithms.0"),
        ({"algorithms": ["none"]}, "oidc.algorithms.0"),
        ({"roleMapping": {"x": "owner"}}, "oidc.roleMapping.x"),
    ],
)
def test_bad_oidc_configuration_stops_start_up(tmp_path, section, message):
    import yaml

    from config import wsconfig

    path = tmp_path / "ws.yaml"
    path.write_text(yaml.safe_dump({"oidc": section}))
    with pytest.raises(wsconfig.ConfigError) as info:
        wsconfig.load(path)
    assert message in str(info.value)
