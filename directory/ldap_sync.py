"""Keep the directory app in step with LDAP / Active Directory.

`directory_sync()` is the one service behind `manage.py sync_directory` and the Celery
beat job. It reads the whole directory in two paged searches (users, groups), flattens
nested groups in memory, compares with the database, and applies only the differences
through directory.services (each user in its own transaction, each change audited):

- users: created, updated (names, email, department, directory id, groups), deactivated
  when gone from the directory, disabled there (AD userAccountControl bit 2, a configured
  attribute, the deny group) or outside the required group; their held items go back
  through distribution. A user the sync deactivated is re-activated when they return;
  one an operator deactivated is left alone.
- groups: every directory group becomes a Django group of the same name (except the
  locally managed ones in AUTH_LDAP_MIRROR_GROUPS_EXCEPT), and each user's group set is
  the flattened closure of their directory groups, as django-auth-ldap mirrors it at login.
- departments: from the OU path under the user search base (the OU tree becomes the
  department tree) or from an attribute.

A run with no differences writes nothing, so rerunning is a no-op.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils.text import slugify

from audit.models import AuditRecord
from directory import services
from directory.models import Department, Profile

log = logging.getLogger(__name__)
User = get_user_model()

SOURCE = "directory"
BATCH = 100  # users per transaction
WRITES = ("created", "updated", "deactivated", "reactivated")
UAC_ACCOUNTDISABLE = 0x2


class SyncError(Exception):
    """The sync refused to run or could not read the directory."""


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class LdapConfig:
    """Everything the sync reads from settings (built by directory.ldap_config)."""

    server_uri: str
    bind_dn: str
    bind_password: str = field(repr=False)
    user_base: str
    user_filter: str
    username_attr: str
    group_base: str
    group_filter: str
    member_attr: str = "member"
    nested_groups: bool = True
    group_name_attr: str = "cn"
    attr_map: dict[str, str] = field(default_factory=dict)
    mirror_groups: bool = True
    mirror_except: frozenset[str] = frozenset()
    require_group: str = ""
    deny_group: str = ""
    check_user_account_control: bool = True
    disabled_attr: str = ""
    disabled_values: tuple[str, ...] = ()
    department_source: str = "ou"
    department_attr: str = "department"
    start_tls: bool = False
    connection_options: dict[int, Any] = field(default_factory=dict)
    page_size: int = 500

    @classmethod
    def from_settings(cls) -> LdapConfig:
        uri = getattr(settings, "AUTH_LDAP_SERVER_URI", "")
        extra = getattr(settings, "WORKSTREAM_LDAP", None)
        if not uri or extra is None:
            raise SyncError("LDAP is not configured: set AUTH_LDAP_SERVER_URI (see README, LDAP / Active Directory)")
        user_search = settings.AUTH_LDAP_USER_SEARCH
        group_search = settings.AUTH_LDAP_GROUP_SEARCH
        except_ = getattr(settings, "AUTH_LDAP_MIRROR_GROUPS_EXCEPT", None)
        return cls(
            server_uri=uri,
            bind_dn=getattr(settings, "AUTH_LDAP_BIND_DN", ""),
            bind_password=getattr(settings, "AUTH_LDAP_BIND_PASSWORD", ""),
            user_base=user_search.base_dn,
            user_filter=extra["sync_user_filter"],
            username_attr=extra["username_attr"],
            group_base=group_search.base_dn,
            group_filter=group_search.filterstr,
            member_attr=extra["member_attr"],
            nested_groups=extra["nested_groups"],
            attr_map=dict(getattr(settings, "AUTH_LDAP_USER_ATTR_MAP", {})),
            mirror_groups=bool(except_) or bool(getattr(settings, "AUTH_LDAP_MIRROR_GROUPS", False)),
            mirror_except=frozenset(except_ or ()),
            require_group=getattr(settings, "AUTH_LDAP_REQUIRE_GROUP", "") or "",
            deny_group=getattr(settings, "AUTH_LDAP_DENY_GROUP", "") or "",
            check_user_account_control=extra["check_user_account_control"],
            disabled_attr=extra["disabled_attr"],
            disabled_values=tuple(extra["disabled_values"]),
            department_source=extra["department_source"],
            department_attr=extra["department_attr"],
            start_tls=getattr(settings, "AUTH_LDAP_START_TLS", False),
            connection_options=dict(getattr(settings, "AUTH_LDAP_CONNECTION_OPTIONS", {})),
            page_size=extra["page_size"],
        )


def connect(cfg: LdapConfig):
    """A bound python-ldap connection (the service account's)."""
    import ldap

    conn = ldap.initialize(cfg.server_uri, bytes_mode=False)
    for option, value in cfg.connection_options.items():
        conn.set_option(option, value)
    conn.protocol_version = ldap.VERSION3
    try:
        if cfg.start_tls:
            conn.start_tls_s()
        conn.simple_bind_s(cfg.bind_dn, cfg.bind_password)
    except ldap.LDAPError as exc:
        # The exception text never holds the password; the bind DN is fine to name.
        raise SyncError(
            f"cannot bind to {cfg.server_uri} as {cfg.bind_dn or '(anonymous)'}: {_ldap_message(exc)}"
        ) from None
    return conn


def _ldap_message(exc) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return " ".join(str(info.get(k, "")) for k in ("desc", "info") if info.get(k)) or exc.__class__.__name__


# --- reading the directory -----------------------------------------------------------------


def norm_dn(dn: str) -> str:
    """A DN in one canonical spelling (case and spacing), for comparing member values."""
    import ldap.dn

    try:
        return ldap.dn.dn2str(ldap.dn.str2dn(dn)).lower()
    except ldap.DECODING_ERROR:
        return dn.strip().lower()


def paged_search(conn, base: str, filterstr: str, attrs: list[str], page_size: int) -> Iterator[tuple[str, dict]]:
    """Every entry under `base` matching `filterstr`, fetched in pages (AD caps a page at 1,000)."""
    import ldap
    from ldap.controls import SimplePagedResultsControl

    control = SimplePagedResultsControl(True, size=page_size, cookie="")
    while True:
        try:
            msgid = conn.search_ext(base, ldap.SCOPE_SUBTREE, filterstr, attrs, serverctrls=[control])
            _, rdata, _, controls = conn.result3(msgid)
        except ldap.NO_SUCH_OBJECT:
            raise SyncError(f"the search base {base!r} does not exist") from None
        for dn, entry in rdata:
            if dn is None:  # a search continuation (referral)
                continue
            yield dn, {k.lower(): [v.decode("utf-8", "replace") for v in values] for k, values in entry.items()}
        cookie = next(
            (c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType),
            None,
        )
        if not cookie:
            return
        control.cookie = cookie


@dataclass(frozen=True)
class DeptRef:
    """A department as the directory names it; `external_id` is what matches it again."""

    external_id: str
    name: str
    parent: DeptRef | None = None


@dataclass
class DirectoryUser:
    dn: str
    username: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    groups: frozenset[str] = frozenset()  # names, flattened
    group_dns: frozenset[str] = frozenset()  # normalised DNs, flattened
    department: DeptRef | None = None
    refused: str = ""  # why the account may not use Workstream ("" = it may)


@dataclass
class Directory:
    users: dict[str, DirectoryUser]  # by lower-case username
    group_names: dict[str, str]  # normalised DN → name
    skipped: int = 0


def department_ref(cfg: LdapConfig, dn: str, attrs: dict[str, list[str]]) -> DeptRef | None:
    """The user's department: its OU path under the user search base, or an attribute."""
    if cfg.department_source == "none":
        return None
    if cfg.department_source == "attribute":
        values = attrs.get(cfg.department_attr.lower()) or []
        value = values[0].strip() if values else ""
        return DeptRef(external_id=f"{cfg.department_attr.lower()}={value.lower()}", name=value) if value else None
    import ldap.dn

    rdns = ldap.dn.str2dn(dn)
    base_len = len(ldap.dn.str2dn(cfg.user_base))
    # The RDNs between the entry and the search base, nearest first; only OUs count.
    between = rdns[1 : len(rdns) - base_len] if len(rdns) > base_len else []
    ous = []
    for rdn in between:
        if rdn[0][0].lower() != "ou":
            break
        ous.append(rdn)
    ref = None
    for i in range(len(ous) - 1, -1, -1):  # from the top OU down
        ou_dn = ldap.dn.dn2str(rdns[1 + i :])
        ref = DeptRef(external_id=norm_dn(ou_dn), name=ous[i][0][1], parent=ref)
    return ref


def account_refusal(cfg: LdapConfig, attrs: dict[str, list[str]], group_dns: frozenset[str] | None) -> str:
    """Why a directory account may not use Workstream, or "" when it may (group_dns None: skip the
    required/denied group checks)."""
    if cfg.check_user_account_control:
        raw = (attrs.get("useraccountcontrol") or ["0"])[0]
        try:
            if int(raw) & UAC_ACCOUNTDISABLE:
                return "disabled in the directory (userAccountControl)"
        except ValueError:
            pass
    if cfg.disabled_attr:
        values = [v.strip().lower() for v in attrs.get(cfg.disabled_attr.lower()) or []]
        if values and (not cfg.disabled_values or any(v in cfg.disabled_values for v in values)):
            return f"disabled in the directory ({cfg.disabled_attr})"
    if group_dns is None:
        return ""
    if cfg.deny_group and norm_dn(cfg.deny_group) in group_dns:
        return "member of the deny group"
    if cfg.require_group and norm_dn(cfg.require_group) not in group_dns:
        return "not a member of the required group"
    return ""


def _closure(start: set[str], parents: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        dn = stack.pop()
        if dn in seen:
            continue
        seen.add(dn)
        stack.extend(parents.get(dn, ()))
    return seen


def read_directory(cfg: LdapConfig, conn) -> Directory:
    """Users and groups, with each user's groups flattened through nesting."""
    member_attr = cfg.member_attr.lower()
    groups: dict[str, str] = {}
    members: dict[str, set[str]] = {}
    group_member_of: dict[str, list[str]] = {}
    for dn, attrs in paged_search(
        conn, cfg.group_base, cfg.group_filter, [cfg.group_name_attr, cfg.member_attr, "memberOf"], cfg.page_size
    ):
        name = (attrs.get(cfg.group_name_attr.lower()) or [""])[0]
        if not name:
            continue
        key = norm_dn(dn)
        groups[key] = name
        members[key] = {norm_dn(m) for m in attrs.get(member_attr, [])}
        group_member_of[key] = attrs.get("memberof", [])

    # Edges child → parent, from both sides: a group's `member` values and an entry's
    # own `memberOf` (AD keeps both; OpenLDAP's groupOfNames only the first).
    parents: dict[str, set[str]] = {}
    for gdn, mset in members.items():
        for m in mset:
            parents.setdefault(m, set()).add(gdn)
    for gdn, values in group_member_of.items():
        for p in values:
            pk = norm_dn(p)
            if pk in groups:
                parents.setdefault(gdn, set()).add(pk)

    attrs_wanted = sorted(
        {cfg.username_attr, "memberOf", "userAccountControl", *cfg.attr_map.values()}
        | ({cfg.disabled_attr} if cfg.disabled_attr else set())
        | ({cfg.department_attr} if cfg.department_source == "attribute" else set())
    )
    users: dict[str, DirectoryUser] = {}
    skipped = 0
    for dn, attrs in paged_search(conn, cfg.user_base, cfg.user_filter, attrs_wanted, cfg.page_size):
        raw = (attrs.get(cfg.username_attr.lower()) or [""])[0].strip()
        username = raw.lower()
        if not username or len(username) > 150:
            skipped += 1
            continue
        if username in users:
            log.warning(
                "directory sync: %s appears twice (%s and %s); keeping the first", username, users[username].dn, dn
            )
            skipped += 1
            continue
        key = norm_dn(dn)
        direct = set(parents.get(key, set()))
        direct |= {norm_dn(p) for p in attrs.get("memberof", [])} & groups.keys()
        group_dns = _closure(direct, parents) & groups.keys() if cfg.nested_groups else direct
        values = {f: (attrs.get(a.lower()) or [""])[0] for f, a in cfg.attr_map.items()}
        users[username] = DirectoryUser(
            dn=dn,
            username=username,
            first_name=values.get("first_name", "")[:150],
            last_name=values.get("last_name", "")[:150],
            email=values.get("email", "")[:254],
            group_dns=frozenset(group_dns),
            groups=frozenset(groups[g] for g in group_dns),
            department=department_ref(cfg, dn, attrs),
            refused=account_refusal(cfg, attrs, frozenset(group_dns)),
        )
    return Directory(users=users, group_names=groups, skipped=skipped)


# --- comparing and applying ------------------------------------------------------------------


@dataclass
class SyncReport:
    """What a sync did (or, with dry_run, would do)."""

    dry_run: bool = False
    directory_users: int = 0
    created: int = 0
    updated: int = 0
    deactivated: int = 0
    reactivated: int = 0
    unchanged: int = 0
    skipped: int = 0
    groups_created: int = 0
    departments_created: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        return self.created + self.updated + self.deactivated + self.reactivated

    def summary(self) -> str:
        verb = "would be " if self.dry_run else ""
        text = (
            f"{self.directory_users} directory users: {verb}created {self.created}, {verb}updated {self.updated}, "
            f"{verb}deactivated {self.deactivated}, {verb}reactivated {self.reactivated}, unchanged {self.unchanged}"
        )
        if self.skipped:
            text += f", skipped {self.skipped}"
        text += f"; groups {verb}created {self.groups_created}, departments {verb}created {self.departments_created}"
        if self.failed:
            text += f"; {len(self.failed)} failed"
        return text + f" ({self.seconds:.2f} s)"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()} | {"changed": self.changed}


@dataclass
class _Local:
    user: Any
    profile_department_ext: str | None
    profile_department_id: int | None
    external_id: str
    groups: frozenset[str]


class Departments:
    """Department lookups by external id; creates the missing ones (parents first)."""

    def __init__(self, dry_run: bool):
        self.dry_run = dry_run
        self.by_ext: dict[str, Department] = {}
        self.codes: set[str] = set()
        for d in Department.objects.all():
            self.codes.add(d.code)
            if d.external_id:
                self.by_ext.setdefault(d.external_id.lower(), d)
        self.planned: set[str] = set()
        self.created = 0

    def exists(self, ref: DeptRef) -> bool:
        return ref.external_id in self.by_ext

    def plan(self, ref: DeptRef | None) -> None:
        while ref is not None and not self.exists(ref) and ref.external_id not in self.planned:
            self.planned.add(ref.external_id)
            ref = ref.parent

    def _code_for(self, ref: DeptRef) -> str:
        base = slugify(ref.name)[:90] or "department"
        code, n = base, 2
        while code in self.codes:
            code, n = f"{base}-{n}", n + 1
        return code

    def get(self, ref: DeptRef | None) -> Department | None:
        if ref is None:
            return None
        found = self.by_ext.get(ref.external_id)
        if found is not None:
            return found
        parent = self.get(ref.parent)
        dept = services.department_create(
            actor=None, code=self._code_for(ref), name=ref.name[:200], parent=parent, external_id=ref.external_id
        )
        self.codes.add(dept.code)
        self.by_ext[ref.external_id] = dept
        self.created += 1
        return dept


def _load_local(usernames: set[str]) -> dict[str, _Local]:
    """The database side: users named by the directory plus every directory-managed user."""
    ext_by_dept = dict(Department.objects.exclude(external_id="").values_list("id", "external_id"))
    managed = Profile.objects.exclude(external_id="").values_list("user_id", flat=True)
    qs = User.objects.filter(username__in=usernames) | User.objects.filter(pk__in=managed)
    users = {u.pk: u for u in qs.select_related("workstream_profile")}
    names: dict[int, set[str]] = {pk: set() for pk in users}
    for user_id, name in User.groups.through.objects.filter(user_id__in=users).values_list("user_id", "group__name"):
        names[user_id].add(name)
    out = {}
    for pk, u in users.items():
        profile = getattr(u, "workstream_profile", None)
        dept_id = profile.department_id if profile else None
        out[u.username.lower()] = _Local(
            user=u,
            profile_department_ext=(ext_by_dept.get(dept_id) or "").lower() if dept_id else None,
            profile_department_id=dept_id,
            external_id=profile.external_id if profile else "",
            groups=frozenset(names[pk]),
        )
    return out


def _deactivated_by_directory(user_ids: list[int]) -> set[int]:
    """Users whose latest (de)activation was the sync's deactivation: those the sync may bring back."""
    if not user_ids:
        return set()
    latest: dict[str, dict] = {}
    rows = (
        AuditRecord.objects.filter(
            stream__in=[f"user:{pk}" for pk in user_ids], action__in=("user.deactivated", "user.activated")
        )
        .order_by("stream", "seq")
        .values_list("stream", "action", "data")
    )
    for stream, action, data in rows:
        latest[stream] = {"action": action, **(data or {})}
    return {
        int(stream.split(":", 1)[1])
        for stream, rec in latest.items()
        if rec["action"] == "user.deactivated" and rec.get("source") == SOURCE
    }


def _target_groups(cfg: LdapConfig, ldap_names: frozenset[str], current: frozenset[str]) -> frozenset[str]:
    """django-auth-ldap's mirror rule: directory groups, but locally managed ones stay as they are."""
    if cfg.mirror_except:
        return (ldap_names - cfg.mirror_except) | (current & cfg.mirror_except)
    return ldap_names


def directory_sync(
    *,
    cfg: LdapConfig | None = None,
    dry_run: bool = False,
    allow_empty: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SyncReport:
    """Bring users, groups and departments in line with the directory; see the module docstring."""
    started = time.monotonic()
    cfg = cfg or LdapConfig.from_settings()
    conn = connect(cfg)
    try:
        directory = read_directory(cfg, conn)
    finally:
        conn.unbind_s()
    report = SyncReport(dry_run=dry_run, directory_users=len(directory.users), skipped=directory.skipped)
    local = _load_local(set(directory.users))
    managed_active = [
        name for name, loc in local.items() if loc.external_id and loc.user.is_active and name not in directory.users
    ]
    if not directory.users and managed_active and not allow_empty:
        raise SyncError(
            f"the directory returned no users under {cfg.user_base!r} with {cfg.user_filter!r}; refusing to "
            f"deactivate {len(managed_active)} accounts (check the settings, or pass allow_empty)"
        )
    may_return = _deactivated_by_directory(
        [loc.user.pk for name, loc in local.items() if not loc.user.is_active and name in directory.users]
    )
    departments = Departments(dry_run)

    # Groups first, so users can be put in them.
    existing_groups = dict(Group.objects.values_list("name", "pk"))
    wanted_groups = set(directory.group_names.values()) - cfg.mirror_except if cfg.mirror_groups else set()
    missing_groups = sorted(wanted_groups - existing_groups.keys())
    report.groups_created = len(missing_groups)
    if not dry_run:
        for name in missing_groups:
            services.group_create(actor=None, name=name, source=SOURCE)
    groups_by_name = {g.name: g for g in Group.objects.filter(name__in=wanted_groups | set(existing_groups))}

    # Departments next, each in its own transaction, so that no user's savepoint can roll
    # back a department that later users point at.
    for entry in directory.users.values():
        if not entry.refused:
            departments.plan(entry.department)
    if not dry_run:
        for entry in directory.users.values():
            if not entry.refused:
                departments.get(entry.department)

    # Users in batches: one commit per batch (a durable commit costs more than the rows),
    # one savepoint per user so that a failing user is reported and the others go on.
    work = sorted(set(directory.users) | set(managed_active))
    total = len(work)
    for first in range(0, total, BATCH):
        with transaction.atomic():
            for done, name in enumerate(work[first : first + BATCH], start=first + 1):
                entry = directory.users.get(name)
                loc = local.get(name)
                args = (cfg, entry, loc, departments, groups_by_name, may_return)
                # Decide first (no writes); only a user with changes costs a savepoint.
                outcome = _sync_one(*args, dry_run=True)
                if not dry_run and outcome in WRITES:
                    try:
                        if outcome == "created":  # user_create is one transaction (savepoint) itself
                            _sync_one(*args, dry_run=False)
                        else:
                            with transaction.atomic():
                                _sync_one(*args, dry_run=False)
                    except Exception as exc:  # one bad entry must not stop the others; it is reported
                        log.exception("directory sync failed for %s", name)
                        report.failed.append(f"{name}: {exc}")
                        outcome = None
                if outcome:
                    setattr(report, outcome, getattr(report, outcome) + 1)
                if progress is not None:
                    progress(done, total)
    if progress is not None and total == 0:
        progress(0, 0)
    report.departments_created = len(departments.planned)
    report.seconds = time.monotonic() - started
    log.info("directory sync: %s", report.summary())
    return report


def _sync_one(
    cfg, entry: DirectoryUser | None, loc: _Local | None, departments, groups_by_name, may_return, *, dry_run
):
    """Compare one user with the directory and apply the difference; returns the report counter."""
    if entry is None or entry.refused:
        if loc is None:
            return "skipped" if entry is not None else None  # refused and never here: nothing to do
        if not loc.user.is_active or (entry is None and not loc.external_id):
            return "unchanged"
        if not dry_run:
            reason = "gone from the directory" if entry is None else entry.refused
            services.user_deactivate(actor=None, user=loc.user, reason=reason, source=SOURCE)
        return "deactivated"

    fields = {"first_name": entry.first_name, "last_name": entry.last_name, "email": entry.email}
    fields = {k: v for k, v in fields.items() if k in cfg.attr_map}
    dept_ext = entry.department.external_id if entry.department else None
    if loc is None:
        if dry_run:
            return "created"
        user = User(username=entry.username, is_active=True, **fields)
        user.set_unusable_password()
        target = _target_groups(cfg, entry.groups, frozenset()) if cfg.mirror_groups else frozenset()
        services.user_create(  # one transaction: user, profile, groups, audit record
            actor=None,
            user=user,
            groups=[groups_by_name[n] for n in sorted(target) if n in groups_by_name],
            profile={"department": departments.get(entry.department), "external_id": entry.dn},
            source=SOURCE,
        )
        return "created"

    user = loc.user
    field_changes = {k: v for k, v in fields.items() if getattr(user, k) != v}
    target = _target_groups(cfg, entry.groups, loc.groups) if cfg.mirror_groups else loc.groups
    reactivate = not user.is_active and user.pk in may_return
    dept_changed = (loc.profile_department_ext or None) != dept_ext
    ext_changed = loc.external_id.lower() != entry.dn.lower()
    if not (field_changes or target != loc.groups or reactivate or dept_changed or ext_changed):
        return "unchanged"
    if not user.is_active and not reactivate:
        return "unchanged"  # an operator deactivated this account: the sync leaves it be
    if dry_run:
        return "reactivated" if reactivate else "updated"
    # The caller's savepoint makes these one change: all of them or none.
    if reactivate:
        services.user_activate(actor=None, user=user, reason="back in the directory")
    if field_changes:
        services.user_update(actor=None, user=user, source=SOURCE, **field_changes)
    if dept_changed or ext_changed:
        kwargs: dict[str, Any] = {"external_id": entry.dn} if ext_changed else {}
        if dept_changed:
            kwargs["department"] = departments.get(entry.department)
        services.profile_update(actor=None, user=user, source=SOURCE, **kwargs)
    if target != loc.groups:
        services.user_set_groups(
            actor=None, user=user, groups=[groups_by_name[n] for n in target if n in groups_by_name], source=SOURCE
        )
    return "reactivated" if reactivate else "updated"
