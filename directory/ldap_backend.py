"""Login against LDAP / Active Directory: django-auth-ldap plus what Workstream needs.

On top of the library (bind as the user, required/denied groups, attribute map, group
mirroring with nested groups flattened):

- accounts disabled in the directory are refused before anything is written: AD's
  userAccountControl bit 2 (ACCOUNTDISABLE), a configured attribute
  (AUTH_LDAP_DISABLED_ATTR / _VALUES), or membership of AUTH_LDAP_DENY_GROUP;
- an account deactivated in Workstream stays refused (the sync re-activates it when the
  directory says so; an operator's deactivation stands);
- what the login changed (a new user, names, email, groups) is audited in the user's
  stream, and the profile gets its directory id (DN) and department, through the
  directory services, all in one transaction with the library's own writes.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django_auth_ldap.backend import LDAPBackend

from directory import services
from directory.ldap_sync import SOURCE, Departments, LdapConfig, account_refusal, department_ref
from directory.models import Profile

log = logging.getLogger(__name__)

_FIELDS = ("first_name", "last_name", "email", "is_active")


class WorkstreamLDAPBackend(LDAPBackend):
    """django-auth-ldap's backend with disabled-account refusal and audited, service-made changes."""

    def get_or_build_user(self, username, ldap_user):
        cfg = LdapConfig.from_settings()
        attrs = {k.lower(): list(v) for k, v in (ldap_user.attrs or {}).items()}
        # Required and denied groups: the library has checked those already (before this hook).
        refused = account_refusal(cfg, attrs, None) if attrs else ""
        if refused:
            raise ldap_user.AuthenticationFailed(f"{username}: {refused}")
        user, built = super().get_or_build_user(username, ldap_user)
        if not built and not user.is_active:
            raise ldap_user.AuthenticationFailed(f"{username}: the account is deactivated in Workstream")
        ldap_user._workstream_before = (
            None if built else ({f: getattr(user, f) for f in _FIELDS}, set(user.groups.values_list("name", flat=True)))
        )
        return user, built

    def authenticate_ldap_user(self, ldap_user, password):
        with transaction.atomic():
            user = super().authenticate_ldap_user(ldap_user, password)
            if user is None:
                # Nothing the library may have written for a refused login is kept.
                transaction.set_rollback(True)
                return None
            self._record(user, ldap_user)
        return user

    def _record(self, user, ldap_user) -> None:
        cfg = LdapConfig.from_settings()
        before = getattr(ldap_user, "_workstream_before", None)
        groups_now = set(user.groups.values_list("name", flat=True))
        if before is None:
            services.record_user_created(actor=None, user=user, source="ldap-login", groups=sorted(groups_now))
        else:
            fields, groups = before
            changed = {f: [fields[f], getattr(user, f)] for f in _FIELDS if fields[f] != getattr(user, f)}
            added, removed = sorted(groups_now - groups), sorted(groups - groups_now)
            if changed or added or removed:
                services.record_login_changes(actor=None, user=user, changes=changed, added=added, removed=removed)
        attrs = {k.lower(): list(values) for k, values in (ldap_user.attrs or {}).items()}
        dn = ldap_user.dn  # lower-cased by django-auth-ldap
        ref = department_ref(cfg, dn, attrs)
        profile = Profile.objects.filter(user_id=user.pk).select_related("department").first()
        current_ext = (profile.department.external_id.lower() if profile and profile.department else None) or None
        ext_stale = profile is None or profile.external_id.lower() != dn.lower()
        dept_stale = (ref.external_id if ref else None) != current_ext
        if ext_stale or dept_stale:
            # Store the directory's own spelling (department names come from the OUs in it).
            dn = _server_dn(ldap_user) or dn
            ref = department_ref(cfg, dn, attrs)
            kwargs = {"external_id": dn} if ext_stale else {}
            if dept_stale:
                kwargs["department"] = Departments(dry_run=False).get(ref)
            profile = services.profile_update(actor=None, user=user, source=SOURCE, **kwargs)
        if profile is not None:
            user.workstream_profile = profile  # the caller sees the profile as it is now


def _server_dn(ldap_user) -> str | None:
    """The entry's DN as the server spells it (one base-scope read)."""
    import ldap

    try:
        found = ldap_user.connection.search_s(ldap_user.dn, ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"])
    except ldap.LDAPError:
        log.warning("could not read back the DN of %s", ldap_user.dn)
        return None
    return found[0][0] if found else None
