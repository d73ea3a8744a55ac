"""The directory sync against a real slapd: users, groups (flattened), departments,
deactivation with items released, idempotency, dry run, the command."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from audit.models import AuditRecord
from directory import services
from directory.ldap_sync import SyncError, directory_sync
from directory.models import Department
from tests import factories

pytestmark = pytest.mark.django_db
User = get_user_model()


def groups_of(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


def test_first_sync_creates_users_groups_and_departments(tree, ldap_on):
    cfg = ldap_on(tree)
    report = directory_sync(cfg=cfg)
    assert report.failed == []
    # 50 users, of which u049 is disabled (never created) and u048 only in a plain group.
    assert (report.created, report.updated, report.deactivated) == (49, 0, 0)
    assert not User.objects.filter(username="u049").exists()
    u = User.objects.get(username="u003")
    assert (u.first_name, u.last_name, u.email) == ("Given003", "Tester003", "u003@example.com")
    assert not u.has_usable_password()
    assert u.workstream_profile.external_id == tree.user_dn(tree.user("u003"))
    # Every user's Django groups are the flattened closure of their directory groups.
    for spec in tree.users:
        if not spec.disabled:
            assert groups_of(spec.username) == tree.closure(spec.username), spec.username
    assert {"claims-team", "all-staff", "workstream-workers"} <= set(Group.objects.values_list("name", flat=True))
    # The OU tree became the department tree.
    claims = Department.objects.get(name="Claims")
    assert claims.parent.name == "Operations" and claims.parent.parent is None
    assert User.objects.get(username="u002").workstream_profile.department == claims
    assert User.objects.get(username="u001").workstream_profile.department is None
    # Operations, Claims, Underwriting, Finance, Accounts, Support
    assert report.departments_created == Department.objects.count() == 6


def test_rerun_changes_nothing(tree, ldap_on):
    cfg = ldap_on(tree)
    directory_sync(cfg=cfg)
    records = AuditRecord.objects.count()
    again = directory_sync(cfg=cfg)
    assert (again.created, again.updated, again.deactivated, again.reactivated) == (0, 0, 0, 0)
    assert again.unchanged == 49 and again.groups_created == 0 and again.departments_created == 0
    assert AuditRecord.objects.count() == records


def test_user_removed_from_directory_is_deactivated_and_items_released(tree, ldap_on, slapd, svc):
    cfg = ldap_on(tree)
    directory_sync(cfg=cfg)
    claims_team = Group.objects.get(name="claims-team")
    queue = factories.queue("claims", groups=[claims_team])
    leaver = User.objects.get(username="u007")
    item = factories.item(actor=svc, queue=queue, assignee="u007")
    assert item.state == "ASSIGNED" and item.assignee_id == leaver.pk

    slapd.ldapdelete(tree.user_dn(tree.user("u007")))
    report = directory_sync(cfg=cfg)
    assert (report.created, report.updated, report.deactivated) == (0, 0, 1)
    leaver.refresh_from_db()
    item.refresh_from_db()
    assert not leaver.is_active
    # Released: the queue's strategy ("offer") offers it to the team again, nobody holds it.
    assert (item.state, item.assignee_id) == ("OFFERED", None)
    record = AuditRecord.objects.filter(stream=f"user:{leaver.pk}", action="user.deactivated").get()
    assert record.data == {"reason": "gone from the directory", "source": "directory"}
    release = AuditRecord.objects.filter(work_item=item, action="release").get()
    assert (release.from_state, release.to_state, release.data["reason"]) == ("ASSIGNED", "OFFERED", "deactivated")
    # And the next run leaves it so.
    assert directory_sync(cfg=cfg).changed == 0


def test_local_users_are_not_touched(tree, ldap_on, alice, sam):
    directory_sync(cfg=ldap_on(tree))
    alice.refresh_from_db()
    sam.refresh_from_db()
    assert alice.is_active and sam.is_active
    assert groups_of("alice") == {"team-a", "workstream-workers"}


def test_dry_run_writes_nothing(tree, ldap_on):
    cfg = ldap_on(tree)
    report = directory_sync(cfg=cfg, dry_run=True)
    assert (report.created, report.groups_created, report.departments_created) == (49, 9, 6)
    assert User.objects.count() == 0 and Group.objects.count() == 0 and AuditRecord.objects.count() == 0


def test_empty_directory_refuses_to_deactivate_everyone(tree, ldap_on):
    cfg = ldap_on(tree)
    directory_sync(cfg=cfg)
    from dataclasses import replace

    wrong = replace(cfg, user_filter="(sAMAccountName=nobody-has-this)")
    with pytest.raises(SyncError, match="refusing to deactivate 49"):
        directory_sync(cfg=wrong)
    assert User.objects.filter(is_active=True).count() == 49


def test_command_prints_counts(tree, ldap_on):
    ldap_on(tree)
    out = io.StringIO()
    call_command("sync_directory", "--dry-run", stdout=out)
    assert "dry run: 50 directory users: would be created 49" in out.getvalue()
    assert User.objects.count() == 0
    out = io.StringIO()
    call_command("sync_directory", stdout=out)
    assert "created 49, updated 0, deactivated 0" in out.getvalue()
    out = io.StringIO()
    call_command("sync_directory", stdout=out)
    assert "created 0, updated 0, deactivated 0, reactivated 0, unchanged 49" in out.getvalue()


def test_changes_in_the_directory_are_applied(tree, ldap_on, slapd):
    cfg = ldap_on(tree)
    directory_sync(cfg=cfg)
    u3 = tree.user_dn(tree.user("u003"))
    slapd.ldapmodify(f"dn: {u3}\nchangetype: modify\nreplace: sn\nsn: Renamed\n")
    # u012 leaves claims-seniors (AD updates the group's member and the user's memberOf together):
    # the flattened set loses only that group.
    u12 = tree.user_dn(tree.user("u012"))
    seniors = tree.group_dn("claims-seniors")
    slapd.ldapmodify(f"dn: {seniors}\nchangetype: modify\ndelete: member\nmember: {u12}\n")
    slapd.ldapmodify(f"dn: {u12}\nchangetype: modify\ndelete: memberOf\nmemberOf: {seniors}\n")
    # u004 (Finance/Accounts) moves to Support.
    u4 = tree.user_dn(tree.user("u004"))
    slapd.ldapmodify(
        f"dn: {u4}\nchangetype: modrdn\nnewrdn: cn=u004\ndeleteoldrdn: 1\nnewsuperior: ou=Support,{tree.people_base}\n"
    )
    # u005 is disabled in the directory.
    u5 = tree.user_dn(tree.user("u005"))
    slapd.ldapmodify(f"dn: {u5}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n")
    report = directory_sync(cfg=cfg)
    assert (report.created, report.updated, report.deactivated, report.failed) == (0, 3, 1, [])
    assert User.objects.get(username="u003").last_name == "Renamed"
    assert groups_of("u012") == {"claims-team", "workstream-workers", "all-staff"}
    profile = User.objects.get(username="u004").workstream_profile
    assert profile.department.name == "Support" and profile.external_id.startswith("cn=u004,ou=Support")
    assert not User.objects.get(username="u005").is_active
    assert directory_sync(cfg=cfg).changed == 0


def test_the_sync_brings_back_only_whom_it_deactivated(tree, ldap_on, slapd):
    cfg = ldap_on(tree)
    directory_sync(cfg=cfg)
    u5 = tree.user_dn(tree.user("u005"))
    slapd.ldapmodify(f"dn: {u5}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n")
    directory_sync(cfg=cfg)
    assert not User.objects.get(username="u005").is_active
    services.user_deactivate(actor=None, user=User.objects.get(username="u006"), reason="on leave")
    slapd.ldapmodify(f"dn: {u5}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 512\n")
    report = directory_sync(cfg=cfg)
    assert (report.reactivated, report.deactivated) == (1, 0)
    assert User.objects.get(username="u005").is_active
    assert not User.objects.get(username="u006").is_active  # an operator's decision stands


def test_celery_task_runs_the_same_service(tree, ldap_on):
    from directory.tasks import sync_directory

    ldap_on(tree)
    result = sync_directory.apply().get()
    assert (result["created"], result["changed"]) == (49, 49)
    assert AuditRecord.objects.filter(action="user.created", channel="system").count() == 49


def test_progress_bar_on_a_terminal(tree, ldap_on):
    from directory.management.commands.sync_directory import ProgressBar

    class Tty(io.StringIO):
        def isatty(self):
            return True

    ldap_on(tree)
    out = Tty()
    call_command("sync_directory", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "\r[" in text and "] 50/50\n" in text and "would be created 49" in text
    bar = ProgressBar(type("W", (), {"write": lambda self, s, ending="": None, "flush": lambda self: None})())
    bar(0, 0)  # nothing to do is a full bar, not a division by zero
