"""Several OS processes started together against the test database (the racing tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


def this_test_database_url() -> str:
    """A DATABASE_URL for the database this test runs on (pytest-django's test database)."""
    db = settings.DATABASES["default"]
    auth = quote(db.get("USER") or "postgres")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def run_together(module: str, args: list[str], *, processes: int, timeout: float = 300) -> list[str]:
    """Start `processes` copies of `python -m module args`, wait until each prints `ready`,
    release them at once (a line on stdin), and return each one's stdout; each must exit 0."""
    env = {**os.environ, "DATABASE_URL": this_test_database_url(), "DB_CONN_MAX_AGE": "0", "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for p in procs:
            line = p.stdout.readline()
            assert line.strip() == "ready", f"{module} did not start: {line!r} {p.stderr.read()[-3000:]}"
        for p in procs:  # all at once
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = []
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, err[-3000:]
            outputs.append(out)
        return outputs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
