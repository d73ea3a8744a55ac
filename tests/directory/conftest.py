"""Fixtures of the directory tests: a real slapd for the session, a seeded tree per test,
and `ldap_on(tree)` which turns LDAP on in settings as the environment would."""

from __future__ import annotations

import itertools
import os
import shutil
import uuid

import pytest

from directory import ldap_config
from directory.ldap_sync import LdapConfig
from tests.directory.ldap_server import SUFFIX, environment, standard_tree, start_slapd

BACKEND = "directory.ldap_backend.WorkstreamLDAPBackend"
_trees = itertools.count(1)


@pytest.fixture(autouse=True)
def isolated_cache(settings):
    """A cache key prefix of this test's own (the Redis cache is shared with other runs)."""
    caches = {name: dict(conf) for name, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"dirtest-{uuid.uuid4().hex}"
    settings.CACHES = caches


# What python-ldap's slapdtest runs, and the Debian package that has it.
COMMANDS = {
    "slapd": "slapd",
    "slapadd": "slapd",
    "ldapadd": "ldap-utils",
    "ldapmodify": "ldap-utils",
    "ldapdelete": "ldap-utils",
    "ldapwhoami": "ldap-utils",
}


def _found(command: str) -> bool:
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    return shutil.which(command, path=path) is not None


@pytest.fixture(scope="session")
def slapd():
    """A real OpenLDAP server on a free loopback port, for the whole session.

    Without Debian's slapd these tests fail (never skip) with the command that fixes it:
    the suite's system packages are listed by the Makefile's `test` target."""
    missing = sorted({package for command, package in COMMANDS.items() if not _found(command)})
    if missing:
        pytest.fail(
            f"the directory tests run a real OpenLDAP server, and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed: sudo apt-get install slapd ldap-utils "
            "(the Makefile's `test` target lists every system package the suite needs)",
            pytrace=False,
        )
    server = start_slapd()
    yield server
    server.stop()


@pytest.fixture
def new_tree(slapd):
    """`new_tree(**kw)`: load a standard tree under a base of its own; removed after the test."""
    loaded = []

    def make(**kwargs):
        tree = standard_tree(f"ou=t{next(_trees)}-{uuid.uuid4().hex[:6]},{SUFFIX}", **kwargs)
        slapd.load(tree)
        loaded.append(tree)
        return tree

    yield make
    for tree in loaded:
        slapd.remove(tree.base)


@pytest.fixture
def tree(new_tree):
    """The seed: 50 users, OUs as departments, nested groups, a disabled user (AD-like)."""
    return new_tree()


@pytest.fixture
def ldap_on(settings, slapd):
    """`ldap_on(tree, **env)`: settings as AUTH_LDAP_* environment variables would make them."""

    def apply(tree, *, drop: tuple[str, ...] = (), **overrides) -> LdapConfig:
        env = environment(slapd, tree, **overrides)
        for key in drop:
            env.pop(key, None)
        for key, value in ldap_config.from_environment(env).items():
            setattr(settings, key, value)
        for key in ("AUTH_LDAP_MIRROR_GROUPS_EXCEPT", "AUTH_LDAP_MIRROR_GROUPS"):
            if key not in ldap_config.from_environment(env) and hasattr(settings, key):
                delattr(settings, key)
        if BACKEND not in settings.AUTHENTICATION_BACKENDS:
            settings.AUTHENTICATION_BACKENDS = [
                settings.AUTHENTICATION_BACKENDS[0],
                BACKEND,
                *settings.AUTHENTICATION_BACKENDS[1:],
            ]
        return LdapConfig.from_settings()

    return apply
