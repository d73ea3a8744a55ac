"""Encrypted context keys: what a create and a read cost with encryption on and off, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ws_bench_crypt \\
        .venv/bin/python bench/context_encryption.py [--items 300] [--rounds 5]

Uses its own database (created and migrated when missing). A throwaway key ring is made for the
run (os.urandom); nothing is printed of it. Two queues, alike but for `encrypted_keys`: `plain`
and `sealed` (two of the four context keys encrypted). Each round creates --items items in
each queue through the service layer as a service client (`work_item_create`: item, audit
record, outbox event, one transaction each), then reads each back as that client
(`work_item_get_for` + `item_representation`, i.e. what GET /workitems/{id} computes: the two
values decrypted). The queues alternate within a round; the figure is the median over the
rounds of the mean time per operation, and the ratio sealed / plain. It also times the
seal and the open of one value alone (AES-256-GCM through `cryptography`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("LOG_FORMAT", "plain")
    # Outside DEBUG the settings want a strong signing key: a throwaway one for this process.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database for the benchmark (it is created when missing)")
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from config import context, contextkeys
    from directory.roles import role_group_name
    from workitems import crypto, services
    from workitems.api.serializers import item_representation
    from workitems.models import Queue
    from workitems.selectors import work_item_get_for

    settings.CONTEXT_KEY_RING = contextkeys.parse(contextkeys.new_key_entry("bench"))
    svc, _ = get_user_model().objects.get_or_create(username="bench-svc")
    svc.groups.add(Group.objects.get_or_create(name=role_group_name("service"))[0])
    svc = get_user_model().objects.get(pk=svc.pk)
    for name, keys in (("bench-plain", []), ("bench-sealed", ["ssn", "iban"])):
        Queue.objects.update_or_create(name=name, defaults={"encrypted_keys": keys})
    ctx = {"ssn": "123-45-6789", "iban": "DE89370400440532013000", "name": "Ada Lovelace", "amount": 1200}

    def creates(queue: str) -> tuple[float, list[int]]:
        ids, t0 = [], time.perf_counter()
        for n in range(args.items):
            body = {"workflow_id": "bench", "run_id": f"r{n}", "task_name": "t", "queue": queue, "context_data": ctx}
            ids.append(services.work_item_create(actor=svc, data=body).pk)
        return (time.perf_counter() - t0) / args.items, ids

    def reads(ids: list[int]) -> float:
        t0 = time.perf_counter()
        for item_id in ids:
            rep = item_representation(work_item_get_for(actor=svc, item_id=item_id), svc)
            assert rep["context_data"]["ssn"] == ctx["ssn"]
        return (time.perf_counter() - t0) / len(ids)

    results: dict[str, dict[str, list[float]]] = {q: {"create": [], "get": []} for q in ("plain", "sealed")}
    with context.acting(channel="api"):
        creates("bench-plain"), creates("bench-sealed")  # warm-up: connections, caches, compiled SQL
        for r in range(args.rounds):
            order = ("plain", "sealed") if r % 2 == 0 else ("sealed", "plain")
            for q in order:
                per_create, ids = creates(f"bench-{q}")
                results[q]["create"].append(per_create)
                results[q]["get"].append(reads(ids))
    ring = settings.CONTEXT_KEY_RING
    n = 20000
    t0 = time.perf_counter()
    sealed = [crypto.seal_value(1, "ssn", ctx["iban"], ring) for _ in range(n)]
    seal_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for s in sealed:
        crypto.open_value(1, "ssn", s)
    open_us = (time.perf_counter() - t0) / n * 1e6

    print(f"{args.rounds} rounds x {args.items} items per queue; median of the rounds' means")  # noqa: T201
    print("| operation | encryption off (ms) | on, 2 keys sealed (ms) | on / off |")  # noqa: T201
    print("| --- | --- | --- | --- |")  # noqa: T201
    for op in ("create", "get"):
        off = statistics.median(results["plain"][op]) * 1000
        on = statistics.median(results["sealed"][op]) * 1000
        print(f"| {op} | {off:.3f} | {on:.3f} | {on / off:.3f} |")  # noqa: T201
    print(f"one value: seal {seal_us:.1f} µs, open {open_us:.1f} µs")  # noqa: T201


if __name__ == "__main__":
    main()
