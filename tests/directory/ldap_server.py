"""A real OpenLDAP server for the tests and the benchmark, and the trees loaded into it.

`Slapd` is python-ldap's `slapdtest.SlapdObject` (Debian's /usr/sbin/slapd on a free
loopback port, schemas from /etc/ldap/schema) with an AD-like schema slice added
(ad_lite_schema.ldif: sAMAccountName, userAccountControl, memberOf, department, AD
`group` and `computer` classes). `Tree` describes a directory — OUs that become
departments, nested groups, users — renders it as LDIF and knows the expected
flattened group closure of every user. `standard_tree()` is the seed: 50 users in an
OU tree, groups nested four deep, one disabled account.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUFFIX = "dc=example,dc=com"


def _slapd_class():
    import slapdtest

    class Slapd(slapdtest.SlapdObject):
        """slapd for one test session: suffix dc=example,dc=com, root `cn=admin`."""

        suffix = SUFFIX
        root_cn = "admin"
        root_pw = "admin-secret"
        slapd_loglevel = "0"
        openldap_schema_files = ("core.ldif", "cosine.ldif", "inetorgperson.ldif", str(HERE / "ad_lite_schema.ldif"))
        TMPDIR = tempfile.gettempdir()  # slapdtest's default is the current directory

        def start(self):
            super().start()
            self.ldapadd(f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n")

        def load(self, tree: Tree) -> None:
            self.ldapadd(tree.ldif())

        def remove(self, dn: str) -> None:
            self.ldapdelete(dn, recursive=True)

    return Slapd


def start_slapd():
    """A started slapd; call .stop() when done."""
    server = _slapd_class()()
    server.start()
    return server


@dataclass
class UserSpec:
    username: str
    ou: tuple[str, ...] = ()  # OU path under People, top first
    groups: tuple[str, ...] = ()  # direct groups
    disabled: bool = False

    @property
    def password(self) -> str:
        return f"pw-{self.username}"


@dataclass
class Tree:
    """A directory under `base`: ou=People (OUs → departments, users) and ou=Groups."""

    base: str
    flavor: str = "ad"  # "ad" (user/group classes, memberOf, userAccountControl) or "openldap"
    users: list[UserSpec] = field(default_factory=list)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group → child groups

    @property
    def people_base(self) -> str:
        return f"ou=People,{self.base}"

    @property
    def groups_base(self) -> str:
        return f"ou=Groups,{self.base}"

    def user(self, username: str) -> UserSpec:
        return next(u for u in self.users if u.username == username)

    def user_dn(self, u: UserSpec) -> str:
        rdn = "cn" if self.flavor == "ad" else "uid"
        ous = "".join(f"ou={name}," for name in reversed(u.ou))
        return f"{rdn}={u.username},{ous}{self.people_base}"

    def group_dn(self, name: str) -> str:
        return f"cn={name},{self.groups_base}"

    def parents_of_group(self, name: str) -> set[str]:
        return {g for g, children in self.groups.items() if name in children}

    def closure(self, username: str) -> set[str]:
        """The user's groups, nested ones flattened (what Django's groups must equal)."""
        seen: set[str] = set()
        stack = list(self.user(username).groups)
        while stack:
            g = stack.pop()
            if g not in seen:
                seen.add(g)
                stack.extend(self.parents_of_group(g))
        return seen

    def ldif(self) -> str:
        entries = [f"dn: {self.base}\nobjectClass: organizationalUnit\nou: {self.base.split(',')[0][3:]}"]
        entries.append(f"dn: {self.people_base}\nobjectClass: organizationalUnit\nou: People")
        entries.append(f"dn: {self.groups_base}\nobjectClass: organizationalUnit\nou: Groups")
        ous = sorted({u.ou[: i + 1] for u in self.users for i in range(len(u.ou))}, key=len)
        for path in ous:
            dn = "".join(f"ou={name}," for name in reversed(path)) + self.people_base
            entries.append(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {path[-1]}")
        for u in self.users:
            entries.append(self._user_entry(u))
        for name in self.groups:
            entries.append(self._group_entry(name))
        return "\n\n".join(entries) + "\n"

    def _user_entry(self, u: UserSpec) -> str:
        lines = [f"dn: {self.user_dn(u)}"]
        classes = ["top", "person", "organizationalPerson", "inetOrgPerson"]
        if self.flavor == "ad":
            classes.append("user")
        lines += [f"objectClass: {c}" for c in classes]
        number = u.username[-3:]
        lines += [
            f"cn: {u.username}",
            f"sn: Tester{number}",
            f"givenName: Given{number}",
            f"mail: {u.username}@example.com",
            f"userPassword: {u.password}",
        ]
        if self.flavor == "ad":
            lines.append(f"sAMAccountName: {u.username}")
            lines.append(f"userAccountControl: {514 if u.disabled else 512}")
            lines += [f"memberOf: {self.group_dn(g)}" for g in u.groups]
            if u.ou:
                lines.append(f"department: {u.ou[-1]}")
        else:
            lines.append(f"uid: {u.username}")
            if u.disabled:
                lines.append("employeeType: disabled")
        return "\n".join(lines)

    def _group_entry(self, name: str) -> str:
        members = [self.user_dn(u) for u in self.users if name in u.groups]
        members += [self.group_dn(child) for child in self.groups[name]]
        lines = [f"dn: {self.group_dn(name)}"]
        if self.flavor == "ad":
            lines += ["objectClass: top", "objectClass: group", f"cn: {name}", "groupType: -2147483646"]
            lines += [f"memberOf: {self.group_dn(p)}" for p in sorted(self.parents_of_group(name))]
        else:
            lines += ["objectClass: top", "objectClass: groupOfNames", f"cn: {name}"]
            if not members:  # groupOfNames needs a member; one that names no entry is ignored
                members = [f"cn=nobody,{self.base}"]
        lines += [f"member: {m}" for m in members]
        return "\n".join(lines)


OUS = [
    ("Operations", "Claims"),
    ("Operations", "Underwriting"),
    ("Finance", "Accounts"),
    ("Finance",),
    ("Support",),
]
TEAM_OF = {
    ("Operations", "Claims"): "claims-team",
    ("Operations", "Underwriting"): "underwriting-team",
    ("Finance", "Accounts"): "accounts-team",
    ("Finance",): "accounts-team",
    ("Support",): "support-team",
}


def standard_tree(base: str, *, flavor: str = "ad", n_users: int = 50, prefix: str = "u") -> Tree:
    """The seed: `n_users` users over an OU tree, nested groups (depth 4), one disabled user.

    - u001 sits directly under People (no department), the rest cycle through OUS;
    - claims-seniors ⊂ claims-team ⊂ workstream-workers ⊂ all-staff (four levels);
    - u001, u002 are supervisors; u048 is in `blocked` (a deny group); u049 is disabled.
    """
    users = []
    for i in range(1, n_users + 1):
        name = f"{prefix}{i:03d}"
        ou = () if i == 1 else OUS[(i - 2) % len(OUS)]
        groups = [TEAM_OF[ou]] if ou else []
        if ou == ("Operations", "Claims") and i % 3 == 0:
            groups.append("claims-seniors")
        if i in (1, 2):
            groups.append("workstream-supervisors")
        if i == 48 and n_users >= 48:
            groups.append("blocked")
        users.append(UserSpec(name, ou=ou, groups=tuple(groups), disabled=(i == 49)))
    groups = {
        "claims-seniors": (),
        "claims-team": ("claims-seniors",),
        "underwriting-team": (),
        "accounts-team": (),
        "support-team": (),
        "workstream-workers": ("claims-team", "underwriting-team", "accounts-team", "support-team"),
        "workstream-supervisors": (),
        "all-staff": ("workstream-workers", "workstream-supervisors"),
        "blocked": (),
    }
    return Tree(base=base, flavor=flavor, users=users, groups=groups)


def environment(server, tree: Tree, **overrides: str) -> dict[str, str]:
    """The AUTH_LDAP_* environment that points Workstream at `tree` on `server`: the five
    settings of the README, plus `overrides`."""
    env = {
        "AUTH_LDAP_SERVER_URI": server.ldap_uri,
        "AUTH_LDAP_BIND_DN": server.root_dn,
        "AUTH_LDAP_BIND_PASSWORD": server.root_pw,
        "AUTH_LDAP_USER_SEARCH_BASE": tree.people_base,
        "AUTH_LDAP_DIRECTORY": tree.flavor,
        "AUTH_LDAP_GROUP_SEARCH_BASE": tree.groups_base,
    }
    env.update(overrides)
    return env
