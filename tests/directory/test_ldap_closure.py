"""Property: after a sync, every user's Django groups are exactly the flattened closure of
their directory groups, for generated group trees (depth ≤ 4, with diamonds), in both
the AD-like (`group`, memberOf) and the OpenLDAP (`groupOfNames`) flavour; and a login
mirrors the same set."""

from __future__ import annotations

import itertools
import uuid

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.test import RequestFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from directory.ldap_sync import directory_sync
from tests.directory.ldap_server import SUFFIX, Tree, UserSpec

pytestmark = pytest.mark.django_db
User = get_user_model()
MAX_DEPTH = 4  # levels of nesting: a chain of at most four groups
_examples = itertools.count(1)


@st.composite
def directories(draw):
    """(flavor, parents per group, direct groups per user): a DAG of groups, no chain longer than 4."""
    n_groups = draw(st.integers(1, 7))
    depth: list[int] = []
    parents: list[set[int]] = []
    for i in range(n_groups):
        eligible = [j for j in range(i) if depth[j] < MAX_DEPTH - 1]
        first = draw(st.sampled_from([None, *eligible])) if eligible else None
        mine = set() if first is None else {first}
        if first is not None and draw(st.booleans()):  # a diamond: a second parent
            mine |= {draw(st.sampled_from(eligible))}
        depth.append(0 if not mine else 1 + max(depth[p] for p in mine))
        parents.append(mine)
    n_users = draw(st.integers(1, 5))
    members = [draw(st.sets(st.integers(0, n_groups - 1), max_size=3)) for _ in range(n_users)]
    flavor = draw(st.sampled_from(["ad", "openldap"]))
    return flavor, parents, members


def build(flavor: str, parents: list[set[int]], members: list[set[int]]) -> Tree:
    ex = next(_examples)
    names = [f"x{ex}-g{i}" for i in range(len(parents))]
    children = {names[i]: tuple(names[c] for c in range(len(parents)) if i in parents[c]) for i in range(len(names))}
    users = [
        UserSpec(f"x{ex}u{k}", ou=("Team",) if k % 2 else (), groups=tuple(names[g] for g in sorted(gs)))
        for k, gs in enumerate(members)
    ]
    return Tree(base=f"ou=x{ex}-{uuid.uuid4().hex[:6]},{SUFFIX}", flavor=flavor, users=users, groups=children)


@settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(directories())
def test_django_groups_equal_the_flattened_closure(slapd, ldap_on, spec):
    tree = build(*spec)
    assert max(_chain(tree, g) for g in tree.groups) <= MAX_DEPTH
    slapd.load(tree)
    try:
        cfg = ldap_on(tree)
        report = directory_sync(cfg=cfg)
        assert report.failed == []
        for u in tree.users:
            got = set(User.objects.get(username=u.username).groups.values_list("name", flat=True))
            assert got == tree.closure(u.username), (u.username, tree.groups)
        # Rerunning changes nothing.
        assert directory_sync(cfg=cfg).changed == 0
        # django-auth-ldap's nested group type at login agrees with the sync.
        first = tree.users[0]
        request = RequestFactory().post("/admin/login/", REMOTE_ADDR="127.0.0.9")
        user = authenticate(request, username=first.username, password=first.password)
        assert user is not None
        assert set(user.groups.values_list("name", flat=True)) == tree.closure(first.username)
    finally:
        slapd.remove(tree.base)


def _chain(tree: Tree, group: str) -> int:
    """The longest chain of nesting that ends at `group` (1 for a top-level group)."""
    parents = tree.parents_of_group(group)
    return 1 + max((_chain(tree, p) for p in parents), default=0)
