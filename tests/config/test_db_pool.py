"""DB_POOL_MAX_SIZE: a process's threads share a bounded psycopg pool (Django's `pool` option)
instead of holding one persistent connection each (issue 15, the serving model's database side)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]

# Eight threads each run a statement that holds its connection for 0.3 s, through the service's
# own settings: with a pool of two, at most two server processes ever serve them.
SCRIPT = """
import json, threading, django
django.setup()
from django.db import connection, connections
pids, errors = set(), []
def work():
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_backend_pid() FROM pg_sleep(0.3)")
            pids.add(cur.fetchone()[0])
        # a prepared statement (config.sqlcache) on a pooled connection
        from workitems.models import Queue
        from config import sqlcache
        t = sqlcache.template(("pool-test",), lambda s: Queue.objects.filter(pk=s.value("q")))
        assert t is not None and t.fetch({"q": 0}) == []
    except Exception as exc:
        errors.append(repr(exc))
    finally:
        connections.close_all()  # back to the pool
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
pool = connection.pool
print(json.dumps({"served": len(pids), "errors": errors, "pool_max": pool.get_stats()["pool_max"] if pool else None}))
"""


def run(**variables) -> dict:
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_VERSION", "DEBUG") and not k.startswith("DB_")}
    env.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="config.settings", SECRET_KEY=secrets.token_urlsafe(50))
    env.update(variables)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_threads_share_a_bounded_pool():
    out = run(DB_POOL_MAX_SIZE="2")
    assert out == {"served": out["served"], "errors": [], "pool_max": 2}, out
    assert 1 <= out["served"] <= 2, f"eight threads, at most two server connections: {out}"


@pytest.mark.django_db
def test_without_a_pool_each_thread_has_its_own_connection():
    assert run() == {"served": 8, "errors": [], "pool_max": None}
