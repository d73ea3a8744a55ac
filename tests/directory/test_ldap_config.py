"""AUTH_LDAP_* environment → settings (pure), and the backend's place in settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import ldap
import pytest
from django.conf import settings

from directory.ldap_config import LdapConfigError, domain_root, from_environment

BASE = {
    "AUTH_LDAP_SERVER_URI": "ldaps://dc1.corp.example:636",
    "AUTH_LDAP_BIND_DN": "CN=svc-workstream,OU=Service,DC=corp,DC=example",
    "AUTH_LDAP_BIND_PASSWORD": "s3cret",
    "AUTH_LDAP_USER_SEARCH_BASE": "OU=Staff,DC=corp,DC=example",
}


def test_off_without_a_server_uri():
    assert from_environment({}) == {}
    assert from_environment({"AUTH_LDAP_BIND_DN": "cn=x"}) == {}


def test_active_directory_preset():
    s = from_environment(BASE)
    assert s["AUTH_LDAP_USER_SEARCH"].filterstr == "(sAMAccountName=%(user)s)"
    assert s["AUTH_LDAP_GROUP_SEARCH"].base_dn == "DC=corp,DC=example"  # the domain root
    assert s["AUTH_LDAP_GROUP_SEARCH"].filterstr == "(objectClass=group)"
    assert type(s["AUTH_LDAP_GROUP_TYPE"]).__name__ == "NestedActiveDirectoryGroupType"
    assert s["AUTH_LDAP_MIRROR_GROUPS"] is True and "AUTH_LDAP_MIRROR_GROUPS_EXCEPT" not in s
    assert s["AUTH_LDAP_USER_ATTR_MAP"] == {"first_name": "givenName", "last_name": "sn", "email": "mail"}
    assert s["AUTH_LDAP_CONNECTION_OPTIONS"][ldap.OPT_REFERRALS] == 0
    extra = s["WORKSTREAM_LDAP"]
    assert extra["username_attr"] == "sAMAccountName" and extra["check_user_account_control"] is True
    assert extra["nested_groups"] is True and extra["sync_interval_minutes"] == 60
    assert "s3cret" not in json.dumps(extra)


def test_openldap_preset_and_overrides(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    env = {
        **BASE,
        "AUTH_LDAP_DIRECTORY": "openldap",
        "AUTH_LDAP_BIND_PASSWORD_FILE": str(secret),
        "AUTH_LDAP_GROUP_TYPE": "groupOfNames",
        "AUTH_LDAP_MIRROR_GROUPS_EXCEPT": "workstream-admins, on-call",
        "AUTH_LDAP_START_TLS": "true",
        "AUTH_LDAP_CA_CERT_FILE": "/etc/ssl/corp-ca.pem",
        "AUTH_LDAP_REQUIRE_GROUP": "cn=workstream,ou=groups,dc=corp,dc=example",
        "AUTH_LDAP_USER_ATTR_MAP": "email=mail",
    }
    s = from_environment(env)
    assert s["AUTH_LDAP_BIND_PASSWORD"] == "from-file"
    assert s["AUTH_LDAP_USER_SEARCH"].filterstr == "(uid=%(user)s)"
    assert type(s["AUTH_LDAP_GROUP_TYPE"]).__name__ == "GroupOfNamesType"
    assert s["WORKSTREAM_LDAP"]["nested_groups"] is False
    assert s["AUTH_LDAP_MIRROR_GROUPS_EXCEPT"] == frozenset({"workstream-admins", "on-call"})
    assert "AUTH_LDAP_MIRROR_GROUPS" not in s
    assert s["AUTH_LDAP_START_TLS"] is True and s["AUTH_LDAP_REQUIRE_GROUP"].startswith("cn=workstream")
    options = list(s["AUTH_LDAP_CONNECTION_OPTIONS"])
    assert options[-1] == ldap.OPT_X_TLS_NEWCTX  # a new TLS context must come after the TLS options
    assert s["AUTH_LDAP_USER_ATTR_MAP"] == {"email": "mail"}


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("AUTH_LDAP_DIRECTORY", "novell", "AUTH_LDAP_DIRECTORY"),
        ("AUTH_LDAP_GROUP_TYPE", "posix", "AUTH_LDAP_GROUP_TYPE"),
        ("AUTH_LDAP_START_TLS", "maybe", "AUTH_LDAP_START_TLS"),
        ("AUTH_LDAP_USER_SEARCH_FILTER", "(uid=bob)", "AUTH_LDAP_USER_SEARCH_FILTER"),
        ("AUTH_LDAP_USER_ATTR_MAP", "is_superuser=admin", "AUTH_LDAP_USER_ATTR_MAP"),
        ("AUTH_LDAP_PAGE_SIZE", "0", "AUTH_LDAP_PAGE_SIZE"),
        ("AUTH_LDAP_USER_SEARCH_BASE", "", "AUTH_LDAP_USER_SEARCH_BASE"),
    ],
)
def test_bad_values_name_the_variable(key, value, named):
    with pytest.raises(LdapConfigError, match=named):
        from_environment({**BASE, key: value})


def test_domain_root():
    assert domain_root("ou=People,ou=t1,dc=example,dc=com") == "dc=example,dc=com"
    assert domain_root("ou=People,o=Example") == "ou=People,o=Example"


def test_backend_order_in_settings():
    """With AUTH_LDAP_SERVER_URI set, the LDAP backend sits after axes and before ModelBackend,
    and the sync is scheduled; without it, neither."""
    assert "directory.ldap_backend.WorkstreamLDAPBackend" not in settings.AUTHENTICATION_BACKENDS
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.AUTHENTICATION_BACKENDS, s.CELERY_BEAT_SCHEDULE['directory-sync']['schedule']]))"
    )
    env = {**os.environ, **BASE, "AUTH_LDAP_SYNC_INTERVAL_MINUTES": "15", "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("AUTH_LDAP_BIND_PASSWORD_FILE", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=settings.BASE_DIR
    )
    backends, schedule = json.loads(out.stdout.strip().splitlines()[-1])
    assert backends == [
        "axes.backends.AxesStandaloneBackend",
        "directory.ldap_backend.WorkstreamLDAPBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    assert schedule == 900.0
    assert "s3cret" not in out.stdout + out.stderr
