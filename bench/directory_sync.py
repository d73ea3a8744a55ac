"""How long the directory sync takes for N users, against a real slapd and PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ws_bench_directory \\
        .venv/bin/python bench/directory_sync.py --users 1000

It starts slapd (python-ldap's slapdtest, as the tests do), loads the seed tree with N
users (OUs → departments, groups nested four deep, one disabled account), creates a
throw-away test database (`test_<name>`, migrated, dropped at the end) and times:

1. the first sync (every user, group and department created),
2. a rerun (nothing changes, nothing is written),
3. a run after 10 % of the users changed a name and 1 % left a group,
4. a run after 5 % of the users were deleted from the directory (deactivated).

Prints a Markdown table (docs/performance.md keeps the latest).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("AXES_ENABLED", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=500)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import override_settings, setup_databases, teardown_databases

    from directory import ldap_config, ldap_sync
    from directory.ldap_sync import LdapConfig, connect, read_directory
    from tests.directory.ldap_server import SUFFIX, environment, standard_tree, start_slapd

    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (a test_<name> copy is created and dropped)")

    server = start_slapd()
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        tree = standard_tree(f"ou=bench,{SUFFIX}", n_users=args.users)
        started = time.monotonic()
        server.load(tree)
        load_s = time.monotonic() - started
        env = environment(server, tree, AUTH_LDAP_PAGE_SIZE=str(args.page_size))
        with override_settings(**ldap_config.from_environment(env)):
            cfg = LdapConfig.from_settings()
            rows = []

            def run(label: str) -> None:
                cpu = time.process_time()
                report = ldap_sync.directory_sync(cfg=cfg)
                cpu = time.process_time() - cpu
                assert not report.failed, report.failed[:5]
                rows.append((label, report, cpu))
                print(f"{label}: {report.summary()}", file=sys.stderr)

            conn = connect(cfg)
            started = time.monotonic()
            directory = read_directory(cfg, conn)
            read_s = time.monotonic() - started
            conn.unbind_s()

            run("first sync (all new)")
            run("rerun, no changes")
            changed = tree.users[:: max(1, len(tree.users) // (len(tree.users) // 10 or 1))][: len(tree.users) // 10]
            server.ldapmodify(
                "\n".join(
                    f"dn: {tree.user_dn(u)}\nchangetype: modify\nreplace: sn\nsn: Changed{u.username}\n"
                    for u in changed
                )
            )
            seniors = [u for u in tree.users if "claims-seniors" in u.groups][: max(1, len(tree.users) // 100)]
            group = tree.group_dn("claims-seniors")
            for u in seniors:
                dn = tree.user_dn(u)
                server.ldapmodify(
                    f"dn: {group}\nchangetype: modify\ndelete: member\nmember: {dn}\n\n"
                    f"dn: {dn}\nchangetype: modify\ndelete: memberOf\nmemberOf: {group}\n"
                )
            run(f"{len(changed)} renamed, {len(seniors)} left a group")
            gone = tree.users[-max(1, len(tree.users) // 20) - 1 : -1]  # not the last (already disabled near the end)
            for u in gone:
                server.ldapdelete(tree.user_dn(u))
            run(f"{len(gone)} deleted from the directory")
    finally:
        teardown_databases(old_config, verbosity=0)
        server.stop()

    print(
        f"\n{args.users} directory users ({len(directory.group_names)} groups), page size {args.page_size}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"LDAP load (ldapadd): {load_s:.2f} s; one full directory read (2 paged searches): {read_s:.2f} s\n")
    print("| run | created | updated | deactivated | unchanged | wall s | users/s | Python CPU s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, r, cpu in rows:
        rate = r.directory_users / r.seconds if r.seconds else 0
        print(
            f"| {label} | {r.created} | {r.updated + r.reactivated} | {r.deactivated} | {r.unchanged} | "
            f"{r.seconds:.2f} | {rate:,.0f} | {cpu:.2f} |"
        )


if __name__ == "__main__":
    main()
