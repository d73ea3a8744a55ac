"""Login through LDAP / Active Directory against a real slapd (django-auth-ldap + our backend)."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.test import RequestFactory
from rest_framework.test import APIClient

from audit.models import AuditRecord
from directory import services
from directory.ldap_sync import directory_sync
from directory.models import Department
from tests import factories

pytestmark = pytest.mark.django_db
User = get_user_model()


def login(username: str, password: str):
    request = RequestFactory().post("/admin/login/", REMOTE_ADDR="127.0.0.9")
    return authenticate(request, username=username, password=password)


def groups_of(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def test_right_password_logs_in_and_mirrors_flattened_groups(tree, ldap_on):
    ldap_on(tree)
    user = login("u012", "pw-u012")
    assert user is not None and user.username == "u012" and user.is_active
    assert (user.first_name, user.email) == ("Given012", "u012@example.com")
    # u012 is in claims-seniors ⊂ claims-team ⊂ workstream-workers ⊂ all-staff.
    assert (
        groups_of(user)
        == tree.closure("u012")
        == {
            "claims-seniors",
            "claims-team",
            "workstream-workers",
            "all-staff",
        }
    )
    profile = user.workstream_profile
    assert profile.external_id == tree.user_dn(tree.user("u012"))
    assert profile.department.name == "Claims" and profile.department.parent.name == "Operations"
    created = AuditRecord.objects.get(stream=f"user:{user.pk}", action="user.created")
    assert created.data["source"] == "ldap-login" and "claims-team" in created.data["groups"]


def test_login_and_sync_agree_on_groups(tree, ldap_on):
    cfg = ldap_on(tree)
    directory_sync(cfg=cfg)
    before = {u.username: groups_of(u) for u in User.objects.all()}
    records = AuditRecord.objects.count()
    for name in ("u002", "u003", "u010", "u047"):
        assert login(name, f"pw-{name}") is not None
    assert {u.username: groups_of(u) for u in User.objects.all()} == before
    assert AuditRecord.objects.count() == records  # a login that changes nothing records nothing


def test_wrong_password_is_refused(tree, ldap_on):
    ldap_on(tree)
    assert login("u004", "not-the-password") is None
    assert login("nobody-here", "pw-x") is None
    assert not User.objects.filter(username__in=["u004", "nobody-here"]).exists()
    assert login("u004", "pw-u004") is not None  # and resets axes' count for this pair


def test_disabled_account_is_refused(tree, ldap_on):
    ldap_on(tree)
    assert tree.user("u049").disabled
    assert login("u049", "pw-u049") is None
    assert not User.objects.filter(username="u049").exists()


def test_disabled_by_attribute_and_deny_group(tree, ldap_on, slapd):
    ldap_on(tree, AUTH_LDAP_DISABLED_ATTR="description", AUTH_LDAP_DISABLED_VALUES="locked")
    slapd.ldapmodify(
        f"dn: {tree.user_dn(tree.user('u005'))}\nchangetype: modify\nadd: description\ndescription: locked\n"
    )
    assert login("u005", "pw-u005") is None
    ldap_on(tree, AUTH_LDAP_DENY_GROUP=tree.group_dn("blocked"))
    assert login("u048", "pw-u048") is None
    assert login("u047", "pw-u047") is not None


def test_required_group(tree, ldap_on):
    ldap_on(tree, AUTH_LDAP_REQUIRE_GROUP=tree.group_dn("workstream-supervisors"))
    assert login("u003", "pw-u003") is None
    assert login("u002", "pw-u002") is not None


def test_account_deactivated_in_workstream_stays_refused(tree, ldap_on):
    ldap_on(tree)
    user = login("u006", "pw-u006")
    services.user_deactivate(actor=None, user=user, reason="left the team")
    assert login("u006", "pw-u006") is None


def test_five_settings_are_enough(tree, ldap_on):
    """The README's five: URI, bind DN, bind password, user search base, directory kind
    (groups are found under the domain root by default)."""
    ldap_on(tree, drop=("AUTH_LDAP_GROUP_SEARCH_BASE",))
    user = login("u002", "pw-u002")
    assert user is not None
    assert {"workstream-supervisors", "all-staff", "claims-team"} <= groups_of(user)


def test_locally_managed_groups_survive_login_and_sync(tree, ldap_on):
    cfg = ldap_on(tree, AUTH_LDAP_MIRROR_GROUPS_EXCEPT="on-call,workstream-supervisors")
    user = login("u003", "pw-u003")
    user.groups.add(factories.group("on-call"))
    user = login("u003", "pw-u003")
    assert "on-call" in groups_of(user)
    # The directory's workstream-supervisors is not mirrored: that role is granted locally here.
    assert "workstream-supervisors" not in groups_of(login("u002", "pw-u002"))
    report = directory_sync(cfg=cfg)
    assert report.failed == []
    assert "on-call" in groups_of(User.objects.get(username="u003"))
    assert not User.objects.filter(groups__name="workstream-supervisors").exists()


def test_openldap_flavour_group_of_names(new_tree, ldap_on):
    tree = new_tree(flavor="openldap")
    cfg = ldap_on(tree, AUTH_LDAP_DISABLED_ATTR="employeeType", AUTH_LDAP_DISABLED_VALUES="disabled")
    user = login("u003", "pw-u003")
    assert user is not None and groups_of(user) == tree.closure("u003")
    assert login("u049", "pw-u049") is None
    report = directory_sync(cfg=cfg)
    assert (report.created, report.failed) == (48, [])  # 50 - u003 (exists) - u049 (disabled)
    for spec in tree.users:
        if not spec.disabled:
            assert groups_of(User.objects.get(username=spec.username)) == tree.closure(spec.username)


def test_start_tls_with_a_ca_file(tree, ldap_on, slapd):
    ldap_on(tree, AUTH_LDAP_START_TLS="true", AUTH_LDAP_CA_CERT_FILE=slapd.cafile)
    assert login("u007", "pw-u007") is not None


def test_department_from_an_attribute(tree, ldap_on):
    cfg = ldap_on(tree, AUTH_LDAP_DEPARTMENT_SOURCE="attribute", AUTH_LDAP_DEPARTMENT_ATTR="department")
    directory_sync(cfg=cfg)
    dept = User.objects.get(username="u002").workstream_profile.department
    assert dept.name == "Claims" and dept.parent is None
    assert dept.external_id == "department=claims"
    assert Department.objects.count() == 5  # Claims, Underwriting, Accounts, Finance, Support


def test_jwt_with_ldap_credentials(tree, ldap_on):
    ldap_on(tree)
    client = APIClient()
    resp = client.post("/api/v1/auth/token", {"username": "u010", "password": "pw-u010"}, format="json")
    assert resp.status_code == 200, resp.content
    tokens = resp.json()
    assert set(tokens) == {"access", "refresh"}
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    resp = me.get("/api/v1/users/u010")
    assert resp.status_code == 200 and resp.json()["department"] is not None
    bad = client.post("/api/v1/auth/token", {"username": "u010", "password": "wrong"}, format="json")
    assert bad.status_code == 401
    assert bad["Content-Type"].startswith("application/problem+json")
    disabled = client.post("/api/v1/auth/token", {"username": "u049", "password": "pw-u049"}, format="json")
    assert disabled.status_code == 401


def test_bind_password_from_a_file_never_logged_or_stored(tree, ldap_on, slapd, tmp_path, caplog):
    secret = tmp_path / "bind-password"
    secret.write_text(slapd.root_pw + "\n")
    cfg = ldap_on(tree, AUTH_LDAP_BIND_PASSWORD="", AUTH_LDAP_BIND_PASSWORD_FILE=str(secret))
    assert cfg.bind_password == slapd.root_pw and slapd.root_pw not in repr(cfg)
    caplog.set_level(logging.DEBUG)
    assert login("u011", "pw-u011") is not None
    directory_sync(cfg=cfg)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "django_auth_ldap" in {r.name for r in caplog.records}  # the library did log, at debug
    assert slapd.root_pw not in logged
    stored = json.dumps(list(AuditRecord.objects.values_list("data", flat=True)))
    assert slapd.root_pw not in stored


def test_wrong_bind_password_is_a_clear_error(tree, ldap_on):
    from directory.ldap_sync import SyncError

    cfg = ldap_on(tree, AUTH_LDAP_BIND_PASSWORD="wrong-secret")
    with pytest.raises(SyncError, match="cannot bind") as err:
        directory_sync(cfg=cfg)
    assert "wrong-secret" not in str(err.value)
