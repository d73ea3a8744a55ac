"""LDAP / Active Directory settings from the environment.

`from_environment(os.environ)` returns the Django settings to add: django-auth-ldap's
own `AUTH_LDAP_*` (login, group mirroring) and `WORKSTREAM_LDAP` (what the sync needs
beyond them). It returns `{}` when AUTH_LDAP_SERVER_URI is unset: LDAP is off.

Five settings get a newcomer going (README, "LDAP / Active Directory"):
AUTH_LDAP_SERVER_URI, AUTH_LDAP_BIND_DN, AUTH_LDAP_BIND_PASSWORD (or _FILE),
AUTH_LDAP_USER_SEARCH_BASE and AUTH_LDAP_DIRECTORY (`ad`, the default, or
`openldap`), whose preset fills in the filters, group type and attribute map.

LDAP support is an optional extra (requirements-ldap.txt: python-ldap, django-auth-ldap).
Nothing here or in settings imports it until AUTH_LDAP_SERVER_URI is set; when it is set
and the extra is missing, start-up stops with EXTRA_MISSING (the variable and the fix).

The bind password comes only from the environment or a secret file; it lives in
memory (settings) and is never written to the database or a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

PRESETS: dict[str, dict[str, str]] = {
    "ad": {
        "USER_SEARCH_FILTER": "(sAMAccountName=%(user)s)",
        "SYNC_USER_FILTER": "(&(objectClass=user)(!(objectClass=computer))(sAMAccountName=*))",
        "USERNAME_ATTR": "sAMAccountName",
        "GROUP_TYPE": "nestedActiveDirectory",
        "GROUP_SEARCH_FILTER": "(objectClass=group)",
        "CHECK_USER_ACCOUNT_CONTROL": "true",
    },
    "openldap": {
        "USER_SEARCH_FILTER": "(uid=%(user)s)",
        "SYNC_USER_FILTER": "(&(objectClass=inetOrgPerson)(uid=*))",
        "USERNAME_ATTR": "uid",
        "GROUP_TYPE": "nestedGroupOfNames",
        "GROUP_SEARCH_FILTER": "(objectClass=groupOfNames)",
        "CHECK_USER_ACCOUNT_CONTROL": "false",
    },
}

# name → (django-auth-ldap class name, member attribute, nested?)
GROUP_TYPES: dict[str, tuple[str, str, bool]] = {
    "activeDirectory": ("ActiveDirectoryGroupType", "member", False),
    "nestedActiveDirectory": ("NestedActiveDirectoryGroupType", "member", True),
    "groupOfNames": ("GroupOfNamesType", "member", False),
    "nestedGroupOfNames": ("NestedGroupOfNamesType", "member", True),
    "groupOfUniqueNames": ("GroupOfUniqueNamesType", "uniqueMember", False),
    "nestedGroupOfUniqueNames": ("NestedGroupOfUniqueNamesType", "uniqueMember", True),
}

DEFAULT_ATTR_MAP = "first_name=givenName,last_name=sn,email=mail"
DEPARTMENT_SOURCES = ("ou", "attribute", "none")


class LdapConfigError(ValueError):
    """A bad AUTH_LDAP_* value; the message names the variable."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise LdapConfigError(f"{name} must be true or false, got {raw!r}")


def _int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise LdapConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise LdapConfigError(f"{name} must be at least {minimum}")
    return value


def _list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()] if raw else []


def _attr_map(name: str, raw: str) -> dict[str, str]:
    out = {}
    for pair in _list(raw):
        field, sep, attr = pair.partition("=")
        if not sep or not field.strip() or not attr.strip():
            raise LdapConfigError(f"{name} must look like first_name=givenName,email=mail; bad part {pair!r}")
        out[field.strip()] = attr.strip()
    allowed = {"first_name", "last_name", "email"}
    if set(out) - allowed:
        raise LdapConfigError(f"{name}: only {', '.join(sorted(allowed))} can be mapped")
    return out


def domain_root(dn: str) -> str:
    """The dc=… suffix of a DN (where AD and most trees keep their groups)."""
    import ldap.dn

    rdns = ldap.dn.str2dn(dn)
    tail = []
    for rdn in reversed(rdns):
        if rdn[0][0].lower() != "dc":
            break
        tail.insert(0, rdn)
    return ldap.dn.dn2str(tail) if tail else dn


def secret(environ: Mapping[str, str], name: str) -> str:
    path = environ.get(f"{name}_FILE", "")
    if path:
        return Path(path).read_text().strip()
    return environ.get(name, "")


EXTRA_MISSING = (
    "AUTH_LDAP_SERVER_URI is set, but LDAP support is not installed ({error}). Install the LDAP "
    "extra with `pip install -r requirements-ldap.txt` (python-ldap builds from source: a C compiler "
    "and the libldap2-dev and libsasl2-dev packages on Debian), or unset AUTH_LDAP_SERVER_URI."
)


def _ldap_modules():
    """python-ldap and django-auth-ldap (requirements-ldap.txt), imported only once LDAP is on."""
    try:
        import ldap
        from django_auth_ldap import config as dal
    except ImportError as exc:
        raise LdapConfigError(EXTRA_MISSING.format(error=exc)) from None
    return ldap, dal


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The LDAP settings for `environ`: `{}` (LDAP off) unless AUTH_LDAP_SERVER_URI is set."""
    uri = environ.get("AUTH_LDAP_SERVER_URI", "").strip()
    if not uri:
        return {}
    ldap, dal = _ldap_modules()

    def get(key: str, default: str = "") -> str:
        return environ.get(f"AUTH_LDAP_{key}", default).strip()

    kind = get("DIRECTORY", "ad").lower()
    if kind not in PRESETS:
        raise LdapConfigError(f"AUTH_LDAP_DIRECTORY must be one of {', '.join(PRESETS)}, got {kind!r}")
    preset = PRESETS[kind]

    def opt(key: str) -> str:
        return get(key, preset.get(key, ""))

    user_base = get("USER_SEARCH_BASE")
    if not user_base:
        raise LdapConfigError("AUTH_LDAP_USER_SEARCH_BASE is required when AUTH_LDAP_SERVER_URI is set")
    user_filter = opt("USER_SEARCH_FILTER")
    if "%(user)s" not in user_filter:
        raise LdapConfigError("AUTH_LDAP_USER_SEARCH_FILTER must contain %(user)s")
    group_base = get("GROUP_SEARCH_BASE") or domain_root(user_base)
    group_type = opt("GROUP_TYPE")
    if group_type not in GROUP_TYPES:
        raise LdapConfigError(f"AUTH_LDAP_GROUP_TYPE must be one of {', '.join(GROUP_TYPES)}, got {group_type!r}")
    type_class, member_attr, nested = GROUP_TYPES[group_type]
    group_filter = opt("GROUP_SEARCH_FILTER")
    department_source = get("DEPARTMENT_SOURCE", "ou").lower()
    if department_source not in DEPARTMENT_SOURCES:
        raise LdapConfigError(f"AUTH_LDAP_DEPARTMENT_SOURCE must be one of {', '.join(DEPARTMENT_SOURCES)}")
    mirror_except = _list(get("MIRROR_GROUPS_EXCEPT"))
    attr_map = _attr_map("AUTH_LDAP_USER_ATTR_MAP", get("USER_ATTR_MAP", DEFAULT_ATTR_MAP))
    timeout = _int("AUTH_LDAP_TIMEOUT", get("TIMEOUT", "10"), minimum=1)

    # Referrals off: AD answers searches at the domain root with referrals that python-ldap
    # would chase anonymously. TLS options need a new context, and that must come last.
    options: dict[int, Any] = {ldap.OPT_REFERRALS: 0, ldap.OPT_NETWORK_TIMEOUT: timeout, ldap.OPT_TIMEOUT: timeout}
    ca_file = get("CA_CERT_FILE")
    if ca_file:
        options[ldap.OPT_X_TLS_CACERTFILE] = ca_file
        options[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
        options[ldap.OPT_X_TLS_NEWCTX] = 0

    out: dict[str, Any] = {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_BIND_DN": get("BIND_DN"),
        "AUTH_LDAP_BIND_PASSWORD": secret(environ, "AUTH_LDAP_BIND_PASSWORD"),
        "AUTH_LDAP_START_TLS": _bool("AUTH_LDAP_START_TLS", get("START_TLS", "false")),
        "AUTH_LDAP_CONNECTION_OPTIONS": options,
        "AUTH_LDAP_USER_SEARCH": dal.LDAPSearch(user_base, ldap.SCOPE_SUBTREE, user_filter),
        "AUTH_LDAP_GROUP_SEARCH": dal.LDAPSearch(group_base, ldap.SCOPE_SUBTREE, group_filter),
        "AUTH_LDAP_GROUP_TYPE": getattr(dal, type_class)(name_attr="cn"),
        "AUTH_LDAP_USER_ATTR_MAP": attr_map,
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
    }
    if mirror_except:
        # django-auth-ldap ignores MIRROR_GROUPS when EXCEPT is set: everything but these is mirrored.
        out["AUTH_LDAP_MIRROR_GROUPS_EXCEPT"] = frozenset(mirror_except)
    else:
        out["AUTH_LDAP_MIRROR_GROUPS"] = _bool("AUTH_LDAP_MIRROR_GROUPS", get("MIRROR_GROUPS", "true"))
    if get("REQUIRE_GROUP"):
        out["AUTH_LDAP_REQUIRE_GROUP"] = get("REQUIRE_GROUP")
    if get("DENY_GROUP"):
        out["AUTH_LDAP_DENY_GROUP"] = get("DENY_GROUP")

    out["WORKSTREAM_LDAP"] = {
        "directory": kind,
        "username_attr": opt("USERNAME_ATTR"),
        "sync_user_filter": opt("SYNC_USER_FILTER"),
        "member_attr": member_attr,
        "nested_groups": nested,
        "check_user_account_control": _bool("AUTH_LDAP_CHECK_USER_ACCOUNT_CONTROL", opt("CHECK_USER_ACCOUNT_CONTROL")),
        "disabled_attr": get("DISABLED_ATTR"),
        "disabled_values": [v.lower() for v in _list(get("DISABLED_VALUES"))],
        "department_source": department_source,
        "department_attr": get("DEPARTMENT_ATTR", "department"),
        "page_size": _int("AUTH_LDAP_PAGE_SIZE", get("PAGE_SIZE", "500"), minimum=1),
        "sync_interval_minutes": _int("AUTH_LDAP_SYNC_INTERVAL_MINUTES", get("SYNC_INTERVAL_MINUTES", "60")),
    }
    return out


# For the README's table and `GET /features`-like introspection: the variables read above.
VARIABLES = (
    "AUTH_LDAP_SERVER_URI",
    "AUTH_LDAP_BIND_DN",
    "AUTH_LDAP_BIND_PASSWORD",
    "AUTH_LDAP_BIND_PASSWORD_FILE",
    "AUTH_LDAP_DIRECTORY",
    "AUTH_LDAP_USER_SEARCH_BASE",
    "AUTH_LDAP_USER_SEARCH_FILTER",
    "AUTH_LDAP_SYNC_USER_FILTER",
    "AUTH_LDAP_USERNAME_ATTR",
    "AUTH_LDAP_USER_ATTR_MAP",
    "AUTH_LDAP_GROUP_SEARCH_BASE",
    "AUTH_LDAP_GROUP_SEARCH_FILTER",
    "AUTH_LDAP_GROUP_TYPE",
    "AUTH_LDAP_MIRROR_GROUPS",
    "AUTH_LDAP_MIRROR_GROUPS_EXCEPT",
    "AUTH_LDAP_REQUIRE_GROUP",
    "AUTH_LDAP_DENY_GROUP",
    "AUTH_LDAP_CHECK_USER_ACCOUNT_CONTROL",
    "AUTH_LDAP_DISABLED_ATTR",
    "AUTH_LDAP_DISABLED_VALUES",
    "AUTH_LDAP_DEPARTMENT_SOURCE",
    "AUTH_LDAP_DEPARTMENT_ATTR",
    "AUTH_LDAP_START_TLS",
    "AUTH_LDAP_CA_CERT_FILE",
    "AUTH_LDAP_TIMEOUT",
    "AUTH_LDAP_PAGE_SIZE",
    "AUTH_LDAP_SYNC_INTERVAL_MINUTES",
)
